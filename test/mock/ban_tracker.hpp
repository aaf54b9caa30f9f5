// ban_tracker.hpp: sliding-window request counting, and the ban it triggers.
//
// Kaspi bans a client that goes over a rate: an IP on the offers endpoint (403 for ~10 s), a
// merchant account on the price push (429 for ~30 min). Both are emulated by one rule, applied per
// egress or per merchant: every request is recorded; when the requests in the last `window_ms` (the
// current one included) exceed `threshold`, the party is banned until now + `ban_ms`. Requests made
// during a ban are recorded too, and a request that again exceeds the threshold pushes the end of
// the ban to its own now + ban_ms; a ban is *started* only by a request made while not banned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace demper_mock {

// SlidingWindow counts events in the last span_ms milliseconds, i.e. in (now - span_ms, now].
class SlidingWindow {
  public:
    // record adds one event at `now` (monotonic, never decreasing) and returns the count in the
    // window.
    size_t record(uint64_t now, uint64_t span_ms) {
        times_.push_back(now);
        while (!times_.empty() && times_.front() + span_ms <= now) times_.pop_front();
        return times_.size();
    }
    void clear() { times_.clear(); }

  private:
    std::deque<uint64_t> times_;
};

struct BanRule {
    size_t threshold = 15;
    uint64_t window_ms = 1000;
    uint64_t ban_ms = 10000;
};

class BanTracker {
  public:
    enum class Verdict { allowed, banned, ban_started };

    // admit records a request at `now` and says whether it may be served.
    Verdict admit(uint64_t now, const BanRule& rule) {
        bool was_banned = now < banned_until_;
        if (window_.record(now, rule.window_ms) > rule.threshold) {
            if (now + rule.ban_ms > banned_until_) banned_until_ = now + rule.ban_ms;
            return was_banned ? Verdict::banned : Verdict::ban_started;
        }
        return was_banned ? Verdict::banned : Verdict::allowed;
    }

    void clear() {
        window_.clear();
        banned_until_ = 0;
    }

  private:
    SlidingWindow window_;
    uint64_t banned_until_ = 0;
};

}  // namespace demper_mock
