// price_feed: see price_feed.hpp for the format and the refusal rules.
#include "core/price_feed.hpp"

#include <array>
#include <charconv>
#include <cstddef>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace demper::core {

namespace {

// TextScan: what one pass over a text value learned.
struct TextScan {
    bool utf8_ok = true;
    bool xml_ok = true;          // no character XML 1.0 forbids
    char32_t forbidden = 0;      // the first forbidden character, when !xml_ok
    std::size_t code_points = 0;
};

bool xml_allowed(char32_t cp) {
    if (cp < 0x20) return cp == 0x09 || cp == 0x0A || cp == 0x0D;
    return cp != 0xFFFE && cp != 0xFFFF;  // surrogates never get here (invalid UTF-8)
}

// decode reads one UTF-8 sequence at s[i]; returns its length, or 0 when the bytes are invalid
// (truncated, bad continuation, overlong, surrogate, above U+10FFFF).
std::size_t decode(std::string_view s, std::size_t i, char32_t* cp) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    char32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (s.size() - i < len) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return 0;
        v = (v << 6) | (cc & 0x3F);
    }
    if (len == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) return 0;
    if (len == 4 && (v < 0x10000 || v > 0x10FFFF)) return 0;
    *cp = v;
    return len;
}

TextScan scan_text(std::string_view s) {
    TextScan scan;
    std::size_t i = 0;
    while (i < s.size()) {
        char32_t cp = 0;
        const std::size_t len = decode(s, i, &cp);
        if (len == 0) {
            scan.utf8_ok = false;
            return scan;
        }
        if (scan.xml_ok && !xml_allowed(cp)) {
            scan.xml_ok = false;
            scan.forbidden = cp;
        }
        ++scan.code_points;
        i += len;
    }
    return scan;
}

bool blank(std::string_view s) {
    for (const char c : s)
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
    return true;
}

// display makes a value safe for a message: invalid bytes and control characters become '?',
// and anything past 40 bytes is cut (on a character boundary) and marked with "...".
std::string display(std::string_view s) {
    constexpr std::size_t kMax = 40;
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        char32_t cp = 0;
        std::size_t len = decode(s, i, &cp);
        const bool printable = len != 0 && cp >= 0x20 && cp != 0x7F && cp != 0xFFFE && cp != 0xFFFF;
        if (len == 0) len = 1;
        if (out.size() + (printable ? len : 1) > kMax) {
            out += "...";
            break;
        }
        if (printable)
            out.append(s.substr(i, len));
        else
            out += '?';
        i += len;
    }
    return out;
}

std::string hex_code_point(char32_t cp) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string digits;
    for (int shift = 20; shift >= 0; shift -= 4) {
        const unsigned d = (cp >> shift) & 0xF;
        if (d != 0 || !digits.empty() || shift < 16) digits += kHex[d];
    }
    return "U+" + digits;
}

// Problems collects problems with the current offer's prefix.
class Problems {
  public:
    void catalogue(std::string problem) { list_.push_back({std::string(), std::move(problem)}); }
    void start_offer(std::size_t index, std::string_view sku) {
        sku_ = display(sku);
        prefix_ = "offer[" + std::to_string(index) + "]";
        if (!sku_.empty()) prefix_ += " (sku \"" + sku_ + "\")";
        prefix_ += ": ";
    }
    void offer(const std::string& problem) { list_.push_back({sku_, prefix_ + problem}); }
    std::vector<FeedProblem> take() { return std::move(list_); }

  private:
    std::vector<FeedProblem> list_;
    std::string sku_;
    std::string prefix_;
};

// text_ok checks UTF-8 and XML characters; reports through `report` and returns true when clean.
template <typename Report>
bool text_ok(std::string_view value, const char* field, Report&& report, TextScan* out = nullptr) {
    const TextScan scan = scan_text(value);
    if (out != nullptr) *out = scan;
    if (!scan.utf8_ok) {
        report(std::string(field) + " is not valid UTF-8");
        return false;
    }
    if (!scan.xml_ok) {
        report(std::string(field) + " contains a character XML does not allow (" +
               hex_code_point(scan.forbidden) + ")");
        return false;
    }
    return true;
}

bool two_digits(std::string_view s, std::size_t at, int lo, int hi) {
    const char a = s[at];
    const char b = s[at + 1];
    if (a < '0' || a > '9' || b < '0' || b > '9') return false;
    const int v = (a - '0') * 10 + (b - '0');
    return v >= lo && v <= hi;
}

bool valid_date(std::string_view d) {
    // YYYY-MM-DD HH:MM
    if (d.size() != 16) return false;
    for (std::size_t i : {0, 1, 2, 3})
        if (d[i] < '0' || d[i] > '9') return false;
    return d[4] == '-' && d[7] == '-' && d[10] == ' ' && d[13] == ':' && two_digits(d, 5, 1, 12) &&
           two_digits(d, 8, 1, 31) && two_digits(d, 11, 0, 23) && two_digits(d, 14, 0, 59);
}

bool valid_city_id(std::string_view id) {
    if (id.size() != 9) return false;
    for (const char c : id)
        if (c < '0' || c > '9') return false;
    return true;
}

void validate_offer(const FeedOffer& offer, Problems& problems) {
    auto report = [&](const std::string& p) { problems.offer(p); };

    TextScan sku_scan;
    if (offer.sku.empty()) {
        report("sku is empty");
    } else if (text_ok(offer.sku, "sku", report, &sku_scan)) {
        if (sku_scan.code_points > kFeedMaxSkuChars)
            report("sku is " + std::to_string(sku_scan.code_points) +
                   " characters long (at most " + std::to_string(kFeedMaxSkuChars) + ")");
    }
    if (blank(offer.model))
        report("model is missing");
    else
        text_ok(offer.model, "model", report);
    if (blank(offer.brand))
        report("brand is missing");
    else
        text_ok(offer.brand, "brand", report);

    if (offer.store_ids.empty() && offer.availabilities.empty()) report("no availability (storeId)");
    std::unordered_set<std::string_view> stores;
    std::vector<std::string_view> ids;
    for (const FeedAvailability& a : offer.availabilities) ids.push_back(a.store_id);
    if (offer.availabilities.empty())
        for (const std::string& store : offer.store_ids) ids.push_back(store);
    for (std::string_view store : ids) {
        if (store.empty()) {
            report("a storeId is empty");
            continue;
        }
        if (!text_ok(store, "storeId", report)) continue;
        if (!stores.insert(store).second) report("duplicate storeId \"" + display(store) + "\"");
    }

    if (offer.city_prices.empty()) report("no city price");
    std::unordered_set<std::string_view> cities;
    for (const FeedCityPrice& cp : offer.city_prices) {
        if (!valid_city_id(cp.city_id)) {
            report("cityId \"" + display(cp.city_id) + "\" is not 9 digits");
            continue;
        }
        if (!cities.insert(cp.city_id).second) report("duplicate cityId " + cp.city_id);
        if (cp.price < kFeedMinPrice || cp.price > kFeedMaxPrice)
            report("price " + std::to_string(cp.price) + " for city " + cp.city_id +
                   " is outside [" + std::to_string(kFeedMinPrice) + ", " +
                   std::to_string(kFeedMaxPrice) + "]");
    }
}

// kEscape[c] is the replacement for byte c in text and attribute values, or nullptr.
struct EscapeTable {
    std::array<const char*, 256> repl{};
    EscapeTable() {
        repl['&'] = "&amp;";
        repl['<'] = "&lt;";
        repl['>'] = "&gt;";
        repl['"'] = "&quot;";
        repl['\''] = "&apos;";
        repl['\t'] = "&#9;";
        repl['\n'] = "&#10;";
        repl['\r'] = "&#13;";
    }
};
const EscapeTable kEscape;

void append_escaped(std::string& out, std::string_view s) {
    std::size_t run = 0;  // start of the pending unescaped run
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char* r = kEscape.repl[static_cast<unsigned char>(s[i])];
        if (r == nullptr) continue;
        out.append(s.data() + run, i - run);
        out.append(r);
        run = i + 1;
    }
    out.append(s.data() + run, s.size() - run);
}

void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(res.ptr - buf));
}

}  // namespace

std::vector<FeedProblem> validate_feed(const FeedCatalog& catalog) {
    Problems problems;
    auto report = [&](const std::string& p) { problems.catalogue(p); };
    if (blank(catalog.company))
        report("company is empty");
    else
        text_ok(catalog.company, "company", report);
    if (blank(catalog.merchant_id))
        report("merchantid is empty");
    else
        text_ok(catalog.merchant_id, "merchantid", report);
    if (!valid_date(catalog.generated_at))
        report("date \"" + display(catalog.generated_at) + "\" is not \"YYYY-MM-DD HH:MM\"");
    if (catalog.offers.empty())
        report("the catalogue has no offers (an empty feed would take every offer off sale)");

    std::unordered_map<std::string_view, std::size_t> first_of_sku;
    first_of_sku.reserve(catalog.offers.size());
    for (std::size_t i = 0; i < catalog.offers.size(); ++i) {
        const FeedOffer& offer = catalog.offers[i];
        problems.start_offer(i, offer.sku);
        validate_offer(offer, problems);
        if (offer.sku.empty()) continue;
        const auto [it, inserted] = first_of_sku.emplace(offer.sku, i);
        if (!inserted)
            problems.offer("duplicate sku (also offer[" + std::to_string(it->second) + "])");
    }
    return problems.take();
}

std::string write_feed(const FeedCatalog& catalog) {
    const std::vector<FeedProblem> problems = validate_feed(catalog);
    if (!problems.empty()) {
        constexpr std::size_t kShown = 5;
        std::string msg = "refusing to write a partial or empty price feed (" +
                          std::to_string(problems.size()) +
                          (problems.size() == 1 ? " problem" : " problems") + "): ";
        for (std::size_t i = 0; i < problems.size() && i < kShown; ++i) {
            if (i > 0) msg += "; ";
            msg += problems[i].problem;
        }
        if (problems.size() > kShown)
            msg += "; and " + std::to_string(problems.size() - kShown) + " more";
        throw std::invalid_argument(msg);
    }

    std::size_t estimate = 512 + catalog.company.size() + catalog.merchant_id.size();
    for (const FeedOffer& o : catalog.offers) {
        estimate += 190 + o.sku.size() + o.model.size() + o.brand.size();
        for (const std::string& s : o.store_ids) estimate += 45 + s.size();
        estimate += 45 * o.city_prices.size();
    }
    estimate += estimate / 16;  // room for escapes

    std::string out;
    out.reserve(estimate);
    out += "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<kaspi_catalog date=\"";
    append_escaped(out, catalog.generated_at);
    out +=
        "\" xmlns=\"kaspiShopping\"\n"
        "    xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n"
        "    xsi:schemaLocation=\"kaspiShopping http://kaspi.kz/kaspishopping.xsd\">\n"
        "  <company>";
    append_escaped(out, catalog.company);
    out += "</company>\n  <merchantid>";
    append_escaped(out, catalog.merchant_id);
    out += "</merchantid>\n  <offers>\n";
    for (const FeedOffer& o : catalog.offers) {
        out += "    <offer sku=\"";
        append_escaped(out, o.sku);
        out += "\">\n      <model>";
        append_escaped(out, o.model);
        out += "</model>\n      <brand>";
        append_escaped(out, o.brand);
        out += "</brand>\n      <availabilities>";
        if (!o.availabilities.empty()) {
            for (const FeedAvailability& a : o.availabilities) {
                out += "<availability available=\"";
                out += a.available ? "yes" : "no";
                out += "\" storeId=\"";
                append_escaped(out, a.store_id);
                out += "\"";
                if (a.stock_count >= 0) {
                    out += " stockCount=\"";
                    append_int(out, a.stock_count);
                    out += "\"";
                }
                if (a.pre_order >= 0) {
                    out += " preOrder=\"";
                    append_int(out, a.pre_order);
                    out += "\"";
                }
                out += "/>";
            }
        } else {
            const char* const available = o.available ? "yes" : "no";
            for (const std::string& store : o.store_ids) {
                out += "<availability available=\"";
                out += available;
                out += "\" storeId=\"";
                append_escaped(out, store);
                out += "\"/>";
            }
        }
        out += "</availabilities>\n      <cityprices>";
        for (const FeedCityPrice& cp : o.city_prices) {
            out += "<cityprice cityId=\"";
            out += cp.city_id;  // validated: 9 digits
            out += "\">";
            append_int(out, cp.price);
            out += "</cityprice>";
        }
        out += "</cityprices>\n    </offer>\n";
    }
    out += "  </offers>\n</kaspi_catalog>\n";
    return out;
}

}  // namespace demper::core
