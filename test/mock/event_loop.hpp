// event_loop.hpp: the mock's single thread: one epoll set plus a heap of timers.
//
// Everything the mock does happens in callbacks of this loop: socket readiness, delayed answers,
// dripped bodies, log flushes, signals (through a signalfd). No thread ever sleeps, so one slow
// answer never holds up another connection. Timers cannot be cancelled; their callbacks look up
// what they act on by id and do nothing when it is gone (a closed connection), which keeps the heap
// simple.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <unordered_map>
#include <vector>

namespace demper_mock {

// now_ms returns milliseconds on the monotonic clock; all timers and rate windows use it.
uint64_t now_ms();
// unix_now returns wall-clock seconds with sub-second precision, for the log and recorded pushes.
double unix_now();

class EventLoop {
  public:
    using IoCallback = std::function<void(uint32_t events)>;
    using TimerCallback = std::function<void()>;

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // watch registers `fd` for `events` (EPOLLIN, EPOLLOUT...), replacing any earlier registration.
    void watch(int fd, uint32_t events, IoCallback callback);
    // change_events updates the event mask of a watched fd.
    void change_events(int fd, uint32_t events);
    // unwatch removes fd; safe to call from inside that fd's own callback.
    void unwatch(int fd);

    // after runs `callback` once, `delay_ms` from now.
    void after(uint64_t delay_ms, TimerCallback callback);

    // run dispatches events until stop() is called.
    void run();
    void stop() { running_ = false; }

  private:
    struct Timer {
        uint64_t due_ms;
        uint64_t sequence;  // keeps timers with equal due times in the order they were set
        TimerCallback callback;
        bool operator>(const Timer& other) const {
            return due_ms != other.due_ms ? due_ms > other.due_ms : sequence > other.sequence;
        }
    };

    int epoll_fd_;
    bool running_ = false;
    uint64_t timer_sequence_ = 0;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
    // Each watch gets a fresh key for epoll's user data, so an event already fetched for a closed
    // (and maybe reused) fd is recognised as stale and dropped. An unwatched callback stays in the
    // map, marked dead, until the dispatch round ends: it may be the very callback that is running.
    struct Watch {
        IoCallback callback;
        bool alive = true;
    };
    std::unordered_map<uint64_t, Watch> watches_;
    std::unordered_map<int, uint64_t> key_of_fd_;
    std::vector<uint64_t> dead_keys_;
    uint64_t next_key_ = 1;

    int next_timeout_ms() const;
    void run_due_timers();
};

}  // namespace demper_mock
