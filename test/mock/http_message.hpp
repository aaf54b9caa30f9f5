// http_message.hpp: HTTP/1.1 requests as the mock reads them, and replies as it plans to send them.
//
// A request is parsed from the front of a connection's input buffer: the head first (request line
// and headers), then exactly Content-Length body bytes. Both origin-form (`/path`) and
// absolute-form
// (`http://host:port/path`, what a client sends to a forward proxy) targets reduce to the same
// `path`, which is how one mock serves as marketplace and as proxy.
//
// A Reply is the answer plus how to deliver it. Most replies are sent whole at once; fault modes
// ask for a delay, for the body to be dripped, or for the body never to come (stall after the
// headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace demper_mock {

// Bounds that keep one client from exhausting the mock's memory.
constexpr size_t kMaxHeadBytes = 16 * 1024;
constexpr size_t kMaxBodyBytes = 64 * 1024 * 1024;  // a PUT of a large offer book must fit

struct HttpRequest {
    std::string method;
    std::string target;  // as sent
    std::string path;    // without scheme, authority and query
    std::string body;
    std::string cookie;  // all Cookie headers joined with "; "
    size_t content_length = 0;
    bool keep_alive = true;
    bool expect_continue = false;
    bool upgrade_h2c = false;  // "Upgrade: h2c": the client offers to switch to cleartext HTTP/2
    std::string head;          // the request line and headers as sent (GET /_mock/last_offers_request)
};

enum class HeadParse {
    incomplete,
    complete,
    bad_request,     // 400
    head_too_large,  // 431
    body_too_large,  // 413
    unsupported,     // 501: Transfer-Encoding (the clients under test always send Content-Length)
};

// parse_head parses the request head at the front of `input`. On `complete`, fills `request` (all
// but the body) and sets `head_bytes` to the head's length including the blank line.
HeadParse parse_head(std::string_view input, HttpRequest& request, size_t& head_bytes);

// How a reply reaches the client.
enum class Delivery {
    whole,                // head and body at once
    drip,                 // head at once, body at `drip_bytes_per_sec`
    stall_after_headers,  // head announcing `stall_content_length` bytes, then nothing, ever
};

struct Arrival;
struct Hold;

struct Reply {
    int status = 200;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers, e.g. Retry-After
    std::string body;
    bool close = false;  // send Connection: close and close after sending

    uint64_t delay_ms = 0;  // wait this long before sending anything
    Delivery delivery = Delivery::whole;
    uint64_t drip_bytes_per_sec = 0;
    size_t stall_content_length = 1000;

    // recorded is false for control-API answers: they never reach the stats or the request log.
    bool recorded = true;

    // hold, when set, holds the request for delay_ms before take() answers it (the other fields
    // of this reply are then unused); the answer take() returns is recorded when it is taken.
    std::shared_ptr<Hold> hold;
};

// A Gate keeps held requests until a test opens it (POST /_mock/release), however long that takes:
// a test that must act while a request is in flight does not race a timer.
class Gate {
  public:
    // wait runs `resume` when the gate opens, at once if it is open already.
    void wait(std::function<void()> resume) {
        if (open_) {
            resume();
            return;
        }
        waiters_.push_back(std::move(resume));
    }
    // open lets every waiter go, in the order they came.
    void open() {
        open_ = true;
        std::vector<std::function<void()>> waiting = std::move(waiters_);
        waiters_.clear();
        for (auto& resume : waiting) resume();
    }

  private:
    bool open_ = false;
    std::vector<std::function<void()>> waiters_;
};

// A Hold keeps a request from being taken when it arrives: the server holds it for the reply's
// delay_ms, or until its gate opens when it has one, as a request held up on its way (a congested
// link, a slow front end), and only then does take() decide its answer, with the time it was
// taken. A client that gives up during the hold (closes its connection) makes abandon() run
// instead: the request was never taken.
struct Hold {
    std::function<Reply(const Arrival& taken)> take;
    std::function<void()> abandon;
    std::shared_ptr<Gate> gate;  // none: held for delay_ms
};

// query_param returns the percent-decoded value of `name` in the query of `target`
// ("/x?m=1&s=a%2Fb" gives "1" for m and "a/b" for s; '+' reads as a space); nullopt when absent.
std::optional<std::string> query_param(std::string_view target, std::string_view name);

// percent_decode decodes %XX escapes (an invalid escape is kept as is).
std::string percent_decode(std::string_view text);

// serialize_head returns the status line and headers of `reply`, ending with the blank line.
std::string serialize_head(const Reply& reply);

// reason_phrase returns the standard reason phrase for `status` ("Unknown" when there is none).
const char* reason_phrase(int status);

// json_reply and error_reply build the common replies.
Reply json_reply(int status, std::string body);
Reply error_reply(int status, std::string_view message);

}  // namespace demper_mock
