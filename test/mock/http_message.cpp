// http_message.cpp: request-head parsing and reply serialisation.
#include "http_message.hpp"

#include <charconv>

#include "json.hpp"

namespace demper_mock {

namespace {

bool is_token_char(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (!is_token_char(c)) return false;
    }
    return true;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// has_token reports whether a comma-separated header value (Connection, Expect) lists `token`.
bool has_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        size_t comma = value.find(',');
        if (iequals(trim(value.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

// path_of reduces an origin-form or absolute-form target to its path; false if it is neither.
bool path_of(std::string_view target, std::string& path) {
    constexpr std::string_view kScheme = "http://";
    if (target.size() > kScheme.size() && iequals(target.substr(0, kScheme.size()), kScheme)) {
        target.remove_prefix(kScheme.size());
        size_t slash = target.find_first_of("/?#");
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
        if (target.front() != '/') return false;  // "http://host?x" has no path: reject it
    }
    if (target.empty() || target.front() != '/') return false;
    path.assign(target.substr(0, target.find_first_of("?#")));
    return true;
}

bool parse_request_line(std::string_view line, HttpRequest& request, bool& http10) {
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return false;
    size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return false;
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method) || target.empty()) return false;
    if (version == "HTTP/1.1") {
        http10 = false;
    } else if (version == "HTTP/1.0") {
        http10 = true;
    } else {
        return false;
    }
    request.method.assign(method);
    request.target.assign(target);
    if (method == "CONNECT") {  // authority-form: answered 405; the path is only for the log
        request.path.assign(target);
        return true;
    }
    return path_of(target, request.path);
}

// HeaderFacts gathers what the headers say before it is applied to the request.
struct HeaderFacts {
    bool has_length = false;
    size_t length = 0;
    bool chunked = false;
    bool says_close = false;
    bool says_keep_alive = false;
};

HeadParse apply_header(std::string_view name, std::string_view value, HttpRequest& request,
                       HeaderFacts& facts) {
    if (iequals(name, "content-length")) {
        size_t length = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
            return ec == std::errc::result_out_of_range ? HeadParse::body_too_large
                                                        : HeadParse::bad_request;
        }
        if (facts.has_length && facts.length != length) return HeadParse::bad_request;
        facts.has_length = true;
        facts.length = length;
    } else if (iequals(name, "transfer-encoding")) {
        facts.chunked = true;
    } else if (iequals(name, "connection")) {
        facts.says_close |= has_token(value, "close");
        facts.says_keep_alive |= has_token(value, "keep-alive");
    } else if (iequals(name, "expect")) {
        request.expect_continue = has_token(value, "100-continue");
    } else if (iequals(name, "upgrade")) {
        request.upgrade_h2c = has_token(value, "h2c");
    } else if (iequals(name, "cookie")) {
        if (!request.cookie.empty()) request.cookie += "; ";
        request.cookie.append(value);
    }
    return HeadParse::complete;
}

}  // namespace

HeadParse parse_head(std::string_view input, HttpRequest& request, size_t& head_bytes) {
    // Clients may send stray CRLFs between pipelined requests (RFC 9112 2.2): skip them.
    size_t start = 0;
    while (start + 1 < input.size() && input[start] == '\r' && input[start + 1] == '\n') start += 2;
    size_t end = input.find("\r\n\r\n", start);
    if (end == std::string_view::npos) {
        return input.size() - start > kMaxHeadBytes ? HeadParse::head_too_large
                                                    : HeadParse::incomplete;
    }
    if (end - start > kMaxHeadBytes) return HeadParse::head_too_large;
    head_bytes = end + 4;

    std::string_view head = input.substr(start, end - start);
    size_t line_end = head.find("\r\n");
    bool http10 = false;
    request = HttpRequest{};
    request.head.assign(head.data(), head.size());
    if (!parse_request_line(head.substr(0, line_end), request, http10))
        return HeadParse::bad_request;

    HeaderFacts facts;
    while (line_end != std::string_view::npos) {
        head.remove_prefix(line_end + 2);
        line_end = head.find("\r\n");
        std::string_view line = head.substr(0, line_end);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
            return HeadParse::bad_request;  // also rejects obsolete line folding
        }
        HeadParse verdict =
            apply_header(line.substr(0, colon), trim(line.substr(colon + 1)), request, facts);
        if (verdict != HeadParse::complete) return verdict;
    }
    if (facts.chunked) return HeadParse::unsupported;
    if (facts.length > kMaxBodyBytes) return HeadParse::body_too_large;
    request.content_length = facts.length;
    request.keep_alive = http10 ? facts.says_keep_alive && !facts.says_close : !facts.says_close;
    return HeadParse::complete;
}

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            int high = hex_digit(text[i + 1]);
            int low = hex_digit(text[i + 2]);
            if (high >= 0 && low >= 0) {
                out += static_cast<char>(high * 16 + low);
                i += 2;
                continue;
            }
        }
        out += text[i];
    }
    return out;
}

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
    size_t question = target.find('?');
    if (question == std::string_view::npos) return std::nullopt;
    std::string_view query = target.substr(question + 1);
    query = query.substr(0, query.find('#'));
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        size_t equals = pair.find('=');
        std::string_view key = pair.substr(0, equals);
        if (key == name) {
            std::string value(equals == std::string_view::npos ? std::string_view()
                                                               : pair.substr(equals + 1));
            for (char& c : value) {
                if (c == '+') c = ' ';
            }
            return percent_decode(value);
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

const char* reason_phrase(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 204:
            return "No Content";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 307:
            return "Temporary Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 413:
            return "Content Too Large";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 520:
            return "Unknown Error";
        case 522:
            return "Connection Timed Out";
        case 524:
            return "A Timeout Occurred";
        case 526:
            return "Invalid SSL Certificate";
        default:
            return "Unknown";
    }
}

std::string serialize_head(const Reply& reply) {
    size_t length = reply.delivery == Delivery::stall_after_headers ? reply.stall_content_length
                                                                    : reply.body.size();
    std::string head;
    head.reserve(160);
    head += "HTTP/1.1 ";
    head += std::to_string(reply.status);
    head += ' ';
    head += reason_phrase(reply.status);
    head += "\r\nServer: demper-mock\r\nContent-Type: ";
    head += reply.content_type;
    head += "\r\nContent-Length: ";
    head += std::to_string(length);
    head += "\r\n";
    for (const auto& [name, value] : reply.headers) {
        head += name;
        head += ": ";
        head += value;
        head += "\r\n";
    }
    if (reply.close) head += "Connection: close\r\n";
    head += "\r\n";
    return head;
}

Reply json_reply(int status, std::string body) {
    Reply reply;
    reply.status = status;
    reply.body = std::move(body);
    return reply;
}

Reply error_reply(int status, std::string_view message) {
    std::string body = "{\"error\":";
    append_json_string(body, message);
    body += '}';
    return json_reply(status, std::move(body));
}

}  // namespace demper_mock
