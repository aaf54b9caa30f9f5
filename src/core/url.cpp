// url: parse_url, URL templates and the host allow-list (see url.hpp).
#include "core/url.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace demper::core {
namespace {

constexpr std::string_view kProductCodePlaceholder = "{product_code}";
constexpr int kMaxPort = 65535;

char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = lower_ascii(c);
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// parse_port reads 1..65535 written in decimal digits only.
std::optional<int> parse_port(std::string_view s) {
    if (s.empty() || s.size() > 5) return std::nullopt;
    int port = 0;
    for (char c : s) {
        if (!is_digit(c)) return std::nullopt;
        port = port * 10 + (c - '0');
    }
    if (port < 1 || port > kMaxPort) return std::nullopt;
    return port;
}

// normalise_ipv6 checks the text between brackets: hex digits, ':' and '.' (embedded IPv4) only.
// Zone ids ("%eth0") are refused: they have no business in a marketplace URL.
std::optional<std::string> normalise_ipv6(std::string_view s) {
    if (s.size() < 2 || s.find(':') == std::string_view::npos) return std::nullopt;
    for (char c : s) {
        if (!is_hex(c) && c != ':' && c != '.') return std::nullopt;
    }
    return to_lower(s);
}

// normalise_name checks a host name or IPv4 literal: labels of [a-z0-9_-] separated by single
// dots; one trailing dot (the DNS root) is dropped so "kaspi.kz." and "kaspi.kz" are one host.
std::optional<std::string> normalise_name(std::string_view s) {
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    if (s.empty() || s.size() > 253) return std::nullopt;
    std::string out = to_lower(s);
    char prev = '.';
    for (char c : out) {
        const bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '_' || c == '.';
        if (!ok) return std::nullopt;
        if (c == '.' && prev == '.') return std::nullopt;  // empty label
        prev = c;
    }
    return out;
}

// normalise_host accepts a host as written in a URL or an allow-list: a name, an IPv4 literal,
// or an IPv6 literal with or without brackets.
std::optional<std::string> normalise_host(std::string_view s) {
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') {
        return normalise_ipv6(s.substr(1, s.size() - 2));
    }
    if (s.find(':') != std::string_view::npos) return normalise_ipv6(s);
    return normalise_name(s);
}

}  // namespace

std::optional<UrlParts> parse_url(std::string_view url) {
    for (char c : url) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == '\\') return std::nullopt;
    }
    const std::size_t sep = url.find("://");
    if (sep == std::string_view::npos || sep == 0) return std::nullopt;
    UrlParts parts;
    parts.scheme = to_lower(url.substr(0, sep));
    if (parts.scheme == "http") {
        parts.port = 80;
    } else if (parts.scheme == "https") {
        parts.port = 443;
    } else {
        return std::nullopt;
    }

    std::string_view rest = url.substr(sep + 3);
    const std::size_t authority_end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, authority_end);
    std::string_view tail =
        authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
    if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;

    std::string_view host_text;
    std::string_view port_text;
    bool has_port = false;
    if (authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host_text = authority.substr(0, close + 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return std::nullopt;
            port_text = after.substr(1);
            has_port = true;
        }
    } else {
        const std::size_t colon = authority.find(':');
        host_text = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            has_port = true;
        }
        if (host_text.find(':') != std::string_view::npos) return std::nullopt;
    }
    if (host_text.empty()) return std::nullopt;
    if (host_text.front() != '[' && host_text.find(']') != std::string_view::npos) {
        return std::nullopt;
    }
    auto host = normalise_host(host_text);
    if (!host) return std::nullopt;
    parts.host = std::move(*host);
    if (has_port) {
        auto port = parse_port(port_text);
        if (!port) return std::nullopt;
        parts.port = *port;
    }

    const std::size_t hash = tail.find('#');
    if (hash != std::string_view::npos) tail = tail.substr(0, hash);
    if (tail.empty()) {
        parts.path_and_query = "/";
    } else if (tail.front() == '?') {
        parts.path_and_query = "/" + std::string(tail);
    } else {
        parts.path_and_query = std::string(tail);
    }
    return parts;
}

std::string percent_encode_component(std::string_view raw) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(raw.size());
    for (char c : raw) {
        const auto u = static_cast<unsigned char>(c);
        const bool keep = std::isalnum(u) != 0 || c == '.' || c == '_' || c == '~' || c == '-';
        if (keep && u < 0x80) {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(kHex[u >> 4]);
            out.push_back(kHex[u & 0x0f]);
        }
    }
    return out;
}

std::string expand_url_template(std::string_view tmpl, std::string_view product_code) {
    const std::string code = percent_encode_component(product_code);
    std::string out;
    out.reserve(tmpl.size() + code.size());
    std::size_t pos = 0;
    while (true) {
        const std::size_t hit = tmpl.find(kProductCodePlaceholder, pos);
        if (hit == std::string_view::npos) break;
        out.append(tmpl.substr(pos, hit - pos));
        out.append(code);
        pos = hit + kProductCodePlaceholder.size();
    }
    out.append(tmpl.substr(pos));
    return out;
}

bool template_is_valid(std::string_view tmpl, std::string* why) {
    auto fail = [why](const char* reason) {
        if (why != nullptr) *why = reason;
        return false;
    };
    if (tmpl.empty()) return fail("URL template is empty");
    const std::string expanded = expand_url_template(tmpl, "1");
    if (expanded.find_first_of("{}") != std::string::npos) {
        return fail("URL template has a placeholder other than {product_code}");
    }
    const std::size_t sep = expanded.find("://");
    if (sep == std::string::npos) return fail("URL template is not an absolute URL");
    const std::string scheme = to_lower(std::string_view(expanded).substr(0, sep));
    if (scheme != "http" && scheme != "https") return fail("URL template must use http or https");
    if (!parse_url(expanded)) return fail("URL template does not parse as a URL with a host");
    return true;
}

bool same_origin(const UrlParts& a, const UrlParts& b) {
    return a.scheme == b.scheme && a.host == b.host && a.port == b.port;
}

RedirectKind classify_redirect(const UrlParts& from, const UrlParts& to) {
    if (from.scheme == "https" && to.scheme == "http") return RedirectKind::downgrade;
    return same_origin(from, to) ? RedirectKind::same_origin : RedirectKind::cross_origin;
}

const char* address_class_name(AddressClass c) {
    switch (c) {
        case AddressClass::global:
            return "global";
        case AddressClass::loopback:
            return "loopback";
        case AddressClass::link_local:
            return "link-local";
        case AddressClass::private_network:
            return "private";
        case AddressClass::unspecified:
            return "unspecified";
        case AddressClass::multicast:
            return "multicast";
        case AddressClass::reserved:
            return "reserved";
    }
    return "unknown";
}

AddressClass classify_ipv4(const std::array<std::uint8_t, 4>& a) {
    if (a[0] == 0) return AddressClass::unspecified;
    if (a[0] == 127) return AddressClass::loopback;
    if (a[0] == 169 && a[1] == 254) return AddressClass::link_local;
    if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
        (a[0] == 100 && (a[1] & 0xc0) == 64)) {
        return AddressClass::private_network;
    }
    if ((a[0] & 0xf0) == 224) return AddressClass::multicast;
    if ((a[0] & 0xf0) == 240) return AddressClass::reserved;
    return AddressClass::global;
}

AddressClass classify_ipv6(const std::array<std::uint8_t, 16>& a) {
    auto zero_up_to = [&a](std::size_t n) {
        return std::all_of(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n),
                           [](std::uint8_t b) { return b == 0; });
    };
    auto carried_ipv4 = [&a](std::size_t at) {
        return classify_ipv4({a[at], a[at + 1], a[at + 2], a[at + 3]});
    };
    if (zero_up_to(16)) return AddressClass::unspecified;
    if (zero_up_to(15) && a[15] == 1) return AddressClass::loopback;
    if (zero_up_to(10) && a[10] == 0xff && a[11] == 0xff) return carried_ipv4(12);  // mapped
    if (zero_up_to(12)) return AddressClass::reserved;  // IPv4-compatible, deprecated
    static constexpr std::array<std::uint8_t, 12> kNat64 = {0x00, 0x64, 0xff, 0x9b};
    if (std::equal(kNat64.begin(), kNat64.end(), a.begin())) return carried_ipv4(12);
    if (a[0] == 0x20 && a[1] == 0x02) return carried_ipv4(2);  // 6to4
    if (a[0] == 0xff) return AddressClass::multicast;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return AddressClass::link_local;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return AddressClass::private_network;  // site-local
    if ((a[0] & 0xfe) == 0xfc) return AddressClass::private_network;  // unique local
    return AddressClass::global;
}

std::optional<AddressClass> classify_ip_literal(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty() || host.size() > INET6_ADDRSTRLEN) return std::nullopt;
    const std::string text(host);
    // inet_aton would stop at a blank and ignore what follows.
    if (!std::all_of(text.begin(), text.end(), [](char c) {
            return is_hex(c) || c == '.' || c == ':' || c == 'x' || c == 'X';
        })) {
        return std::nullopt;
    }
    if (text.find(':') != std::string::npos) {
        in6_addr v6{};
        if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) return std::nullopt;
        std::array<std::uint8_t, 16> bytes{};
        std::memcpy(bytes.data(), &v6, bytes.size());
        return classify_ipv6(bytes);
    }
    // inet_aton, not inet_pton: it reads the same shorthand forms as curl's URL parser and the
    // resolver ("127.1", "0x7f000001"), which inet_pton would call names.
    in_addr v4{};
    if (::inet_aton(text.c_str(), &v4) == 0) return std::nullopt;
    std::array<std::uint8_t, 4> bytes{};
    std::memcpy(bytes.data(), &v4, bytes.size());
    return classify_ipv4(bytes);
}

HostAllowList::HostAllowList(std::string_view comma_separated) {
    std::size_t pos = 0;
    while (pos <= comma_separated.size()) {
        std::size_t comma = comma_separated.find(',', pos);
        if (comma == std::string_view::npos) comma = comma_separated.size();
        const std::string_view raw = trim(comma_separated.substr(pos, comma - pos));
        pos = comma + 1;
        if (raw.empty()) continue;

        Entry e;
        std::string_view host_text = raw;
        std::string_view port_text;
        if (host_text.front() == '[') {
            const std::size_t close = host_text.find(']');
            if (close != std::string_view::npos && close + 1 < host_text.size() &&
                host_text[close + 1] == ':') {
                port_text = host_text.substr(close + 2);
                host_text = host_text.substr(0, close + 1);
            }
        } else if (std::count(host_text.begin(), host_text.end(), ':') == 1) {
            const std::size_t colon = host_text.find(':');
            port_text = host_text.substr(colon + 1);
            host_text = host_text.substr(0, colon);
        }
        if (!port_text.empty() || (raw.back() == ':')) {
            auto port = parse_port(port_text);
            if (!port) {
                invalid_.emplace_back(raw);
                continue;
            }
            e.port = *port;
        }
        if (host_text.size() > 2 && host_text.substr(0, 2) == "*.") {
            e.subdomains_only = true;
            host_text.remove_prefix(2);
        }
        auto host = normalise_host(host_text);
        if (!host || (e.subdomains_only && host->find(':') != std::string::npos)) {
            invalid_.emplace_back(raw);
            continue;
        }
        e.host = std::move(*host);
        entries_.push_back(std::move(e));
    }
}

bool HostAllowList::matches(const Entry& e, const std::string& host, int port) const {
    if (e.port != 0 && port != 0 && e.port != port) return false;
    if (!e.subdomains_only) return host == e.host;
    return host.size() > e.host.size() + 1 &&
           host.compare(host.size() - e.host.size(), e.host.size(), e.host) == 0 &&
           host[host.size() - e.host.size() - 1] == '.';
}

bool HostAllowList::allows(std::string_view host) const { return allows(host, 0); }

bool HostAllowList::allows(std::string_view host, int port) const {
    auto normal = normalise_host(host);
    if (!normal) return false;
    for (const Entry& e : entries_) {
        if (matches(e, *normal, port)) return true;
    }
    return false;
}

}  // namespace demper::core
