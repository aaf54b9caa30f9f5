// json_read: what every parser of a marketplace answer checks the same way (offers, the cabinet's
// list and details, the push job): the body before RapidJSON sees it, RapidJSON's error text, and
// whole numbers of tenge that may be written as floats.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace demper::core::json_read {

// Not kParseFullPrecisionFlag: RapidJSON 1.1.0's full-precision strtod has undefined behaviour
// (signed overflow, negative shifts, clz(0)) on numbers with absurd exponents, which the fuzzer
// reaches. The normal-precision path is exact for the integral prices we accept (at most 12
// digits). Iterative parsing: deep nesting cannot overflow the stack.
constexpr unsigned kParseFlags =
    rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// body_error says why a body cannot be a JSON answer before parsing it (empty, an HTML page, a
// NUL byte, which RapidJSON would take for the end of input), or nullopt.
inline std::optional<std::string> body_error(std::string_view body) {
    std::size_t first = 0;
    while (first < body.size() && is_space(body[first])) ++first;
    if (first == body.size()) return std::string("empty response");
    if (body[first] == '<') return std::string("response is not JSON (HTML page)");
    if (body.find('\0') != std::string_view::npos)
        return std::string("response is not JSON (contains a NUL byte)");
    return std::nullopt;
}

// error_text makes RapidJSON's English message fit our style (lower case, no final period).
inline std::string error_text(rapidjson::ParseErrorCode code) {
    std::string text = rapidjson::GetParseError_En(code);
    if (!text.empty() && text.back() == '.') text.pop_back();
    if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
        text[0] = static_cast<char>(text[0] - 'A' + 'a');
    return text;
}

// parse_error is the error of a finished Parse, or nullopt.
inline std::optional<std::string> parse_error(const rapidjson::Document& doc) {
    if (!doc.HasParseError()) return std::nullopt;
    return "response is not JSON: " + error_text(doc.GetParseError()) + " at offset " +
           std::to_string(doc.GetErrorOffset());
}

// whole_number converts a JSON number that is a whole number in [min, max] (151990, 151990.0,
// 1.5e5) to an integer; false for anything else (a string, a fraction, 1e308, NaN).
inline bool whole_number(const rapidjson::Value& v, std::int64_t min, std::int64_t max,
                         std::int64_t* out) {
    if (!v.IsNumber()) return false;
    if (v.IsInt64()) {
        const std::int64_t n = v.GetInt64();
        if (n < min || n > max) return false;
        *out = n;
        return true;
    }
    if (v.IsUint64()) return false;  // above INT64_MAX: out of any range we use
    const double d = v.GetDouble();
    if (!std::isfinite(d) || d < static_cast<double>(min) || d > static_cast<double>(max))
        return false;
    if (std::floor(d) != d) return false;
    *out = static_cast<std::int64_t>(d);  // exact: integral and within range
    return true;
}

// storable_text says whether a decoded JSON string can be stored and sent again as it is: valid
// UTF-8 (RapidJSON decodes an escaped lone surrogate such as "\\udcbc" into bytes that are not) and
// no NUL character (no PostgreSQL text can hold one).
inline bool storable_text(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0) return false;
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t more = 0;
        std::uint32_t code = 0;
        if ((c & 0xE0) == 0xC0) {
            more = 1;
            code = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            more = 2;
            code = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            more = 3;
            code = c & 0x07;
        } else {
            return false;
        }
        if (s.size() - i <= more) return false;
        for (std::size_t k = 1; k <= more; ++k) {
            const auto next = static_cast<unsigned char>(s[i + k]);
            if ((next & 0xC0) != 0x80) return false;
            code = (code << 6) | (next & 0x3F);
        }
        const std::uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
        if (code < smallest[more] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
            return false;
        i += more + 1;
    }
    return true;
}

inline bool key_is(const rapidjson::Value& name, const char* key) {
    const std::size_t n = std::strlen(key);
    return name.GetStringLength() == n && std::memcmp(name.GetString(), key, n) == 0;
}

// member returns object[key], or nullptr; `*duplicate` is set when the key appears more than once
// (two JSON readers could disagree on which one counts).
inline const rapidjson::Value* member(const rapidjson::Value& object, const char* key,
                                      bool* duplicate) {
    const rapidjson::Value* found = nullptr;
    for (auto m = object.MemberBegin(); m != object.MemberEnd(); ++m) {
        if (!key_is(m->name, key)) continue;
        if (found != nullptr) *duplicate = true;
        found = &m->value;
    }
    return found;
}

}  // namespace demper::core::json_read
