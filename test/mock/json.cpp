// json.cpp: a strict recursive-descent JSON parser (RFC 8259) and the matching writer helpers.
#include "json.hpp"

#include <charconv>
#include <cstdlib>

namespace demper_mock {

namespace {

// Deep nesting only ever comes from hostile input; a bound keeps the recursion off the stack's
// edge.
constexpr int kMaxDepth = 64;

class JsonParser {
  public:
    explicit JsonParser(std::string_view text) : text_(text) {}

    std::optional<JsonValue> parse_document() {
        JsonValue value;
        skip_space();
        if (!parse_value(value, 0)) return std::nullopt;
        skip_space();
        if (pos_ != text_.size()) return std::nullopt;
        return value;
    }

  private:
    std::string_view text_;
    size_t pos_ = 0;

    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return at_end() ? '\0' : text_[pos_]; }

    void skip_space() {
        while (!at_end()) {
            char c = text_[pos_];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
            ++pos_;
        }
    }

    bool consume_literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    bool parse_value(JsonValue& out, int depth) {
        if (depth > kMaxDepth) return false;
        switch (peek()) {
            case '{':
                return parse_object(out, depth);
            case '[':
                return parse_array(out, depth);
            case '"':
                out.type = JsonValue::Type::string;
                return parse_string(out.text);
            case 't':
                out.type = JsonValue::Type::boolean;
                out.boolean = true;
                return consume_literal("true");
            case 'f':
                out.type = JsonValue::Type::boolean;
                return consume_literal("false");
            case 'n':
                out.type = JsonValue::Type::null;
                return consume_literal("null");
            default:
                return parse_number(out);
        }
    }

    bool parse_object(JsonValue& out, int depth) {
        out.type = JsonValue::Type::object;
        ++pos_;  // '{'
        skip_space();
        if (peek() == '}') {
            ++pos_;
            return true;
        }
        for (;;) {
            skip_space();
            JsonMember member;
            if (peek() != '"' || !parse_string(member.key)) return false;
            skip_space();
            if (peek() != ':') return false;
            ++pos_;
            skip_space();
            if (!parse_value(member.value, depth + 1)) return false;
            out.members.push_back(std::move(member));
            skip_space();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() != '}') return false;
            ++pos_;
            return true;
        }
    }

    bool parse_array(JsonValue& out, int depth) {
        out.type = JsonValue::Type::array;
        ++pos_;  // '['
        skip_space();
        if (peek() == ']') {
            ++pos_;
            return true;
        }
        for (;;) {
            skip_space();
            JsonValue item;
            if (!parse_value(item, depth + 1)) return false;
            out.items.push_back(std::move(item));
            skip_space();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() != ']') return false;
            ++pos_;
            return true;
        }
    }

    bool parse_number(JsonValue& out) {
        size_t start = pos_;
        if (peek() == '-') ++pos_;
        if (peek() == '0') {
            ++pos_;
        } else if (!consume_digits()) {
            return false;
        }
        if (peek() == '.') {
            ++pos_;
            if (!consume_digits()) return false;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (!consume_digits()) return false;
        }
        out.type = JsonValue::Type::number;
        out.text.assign(text_.substr(start, pos_ - start));
        out.number = std::strtod(out.text.c_str(), nullptr);  // 1e999 becomes inf: fine for a mock
        return true;
    }

    bool consume_digits() {
        size_t start = pos_;
        while (!at_end() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
        return pos_ > start;
    }

    bool parse_hex4(uint32_t& code) {
        if (pos_ + 4 > text_.size()) return false;
        auto first = text_.data() + pos_;
        auto [end, ec] = std::from_chars(first, first + 4, code, 16);
        if (ec != std::errc() || end != first + 4) return false;
        pos_ += 4;
        return true;
    }

    static void append_utf8(std::string& out, uint32_t code) {
        if (code < 0x80) {
            out += static_cast<char>(code);
        } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (code >> 18));
            out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        }
    }

    bool parse_unicode_escape(std::string& out) {
        uint32_t code = 0;
        if (!parse_hex4(code)) return false;
        if (code >= 0xD800 && code <= 0xDBFF) {  // a high surrogate must be followed by a low one
            uint32_t low = 0;
            if (!consume_literal("\\u") || !parse_hex4(low) || low < 0xDC00 || low > 0xDFFF) {
                return false;
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        } else if (code >= 0xDC00 && code <= 0xDFFF) {
            return false;
        }
        append_utf8(out, code);
        return true;
    }

    bool parse_string(std::string& out) {
        ++pos_;  // opening quote
        while (!at_end()) {
            char c = text_[pos_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return false;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at_end()) return false;
            char e = text_[pos_++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u':
                    if (!parse_unicode_escape(out)) return false;
                    break;
                default:
                    return false;
            }
        }
        return false;
    }
};

}  // namespace

const JsonValue* JsonValue::find(std::string_view key) const {
    for (auto it = members.rbegin(); it != members.rend(); ++it) {
        if (it->key == key) return &it->value;
    }
    return nullptr;
}

std::optional<int64_t> JsonValue::as_int() const {
    if (type != Type::number) return std::nullopt;
    int64_t result = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), result);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return result;
}

std::optional<std::string> JsonValue::as_text() const {
    if (type == Type::string || type == Type::number) return text;
    return std::nullopt;
}

bool read_unsigned_member(const JsonValue& object, std::string_view key, uint64_t& out) {
    const JsonValue* value = object.find(key);
    if (value == nullptr) return true;
    auto number = value->as_int();
    if (!number || *number < 0) return false;
    out = static_cast<uint64_t>(*number);
    return true;
}

std::optional<JsonValue> parse_json(std::string_view text) {
    return JsonParser(text).parse_document();
}

void append_json_string(std::string& out, std::string_view s) {
    static const char kHex[] = "0123456789abcdef";
    out += '"';
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            out += "\\u00";
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
        } else {
            out += c;
        }
    }
    out += '"';
}

void append_json(std::string& out, const JsonValue& value) {
    switch (value.type) {
        case JsonValue::Type::null:
            out += "null";
            break;
        case JsonValue::Type::boolean:
            out += value.boolean ? "true" : "false";
            break;
        case JsonValue::Type::number:
            out += value.text;
            break;
        case JsonValue::Type::string:
            append_json_string(out, value.text);
            break;
        case JsonValue::Type::array:
            out += '[';
            for (size_t i = 0; i < value.items.size(); ++i) {
                if (i) out += ',';
                append_json(out, value.items[i]);
            }
            out += ']';
            break;
        case JsonValue::Type::object:
            out += '{';
            for (size_t i = 0; i < value.members.size(); ++i) {
                if (i) out += ',';
                append_json_string(out, value.members[i].key);
                out += ':';
                append_json(out, value.members[i].value);
            }
            out += '}';
            break;
    }
}

}  // namespace demper_mock
