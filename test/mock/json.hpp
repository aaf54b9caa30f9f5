// json.hpp: the mock marketplace's small JSON reader and writer helpers.
//
// The mock parses little JSON: offer-request bodies (to find `limit` and `page`), push bodies and
// the control API's bodies. A tree of JsonValue is enough; speed matters only for the offers body,
// which is a few hundred bytes. Duplicate object keys are kept in order and `find` returns the last
// one, which is what most real parsers do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demper_mock {

struct JsonMember;

struct JsonValue {
    enum class Type { null, boolean, number, string, array, object };

    Type type = Type::null;
    bool boolean = false;
    double number = 0;
    std::string text;  // the decoded string, or a number's literal as written
    std::vector<JsonValue> items;
    std::vector<JsonMember> members;

    bool is_object() const { return type == Type::object; }
    // find returns the last member named `key`, or nullptr (also when this is not an object).
    const JsonValue* find(std::string_view key) const;
    // as_int returns the value when it is a number written as an integer that fits in int64.
    std::optional<int64_t> as_int() const;
    // as_text returns the string value of a string, or the literal of a number.
    std::optional<std::string> as_text() const;
};

struct JsonMember {
    std::string key;
    JsonValue value;
};

// read_unsigned_member sets `out` from object[key] when that is a non-negative integer. An absent
// key leaves `out` alone and succeeds; any other value fails.
bool read_unsigned_member(const JsonValue& object, std::string_view key, uint64_t& out);

// parse_json returns the parsed document, or nullopt if `text` is not exactly one JSON value.
std::optional<JsonValue> parse_json(std::string_view text);

// append_json_string appends `s` as a quoted, escaped JSON string.
void append_json_string(std::string& out, std::string_view s);

// append_json writes `value` back as compact JSON (numbers keep their literal text).
void append_json(std::string& out, const JsonValue& value);

}  // namespace demper_mock
