// event_loop.cpp: epoll dispatch and the timer heap.
#include "event_loop.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

namespace demper_mock {

namespace {
constexpr int kMaxEventsPerWait = 256;

[[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}
}  // namespace

uint64_t now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

double unix_now() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

EventLoop::EventLoop() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ < 0) fail("epoll_create1");
}

EventLoop::~EventLoop() { close(epoll_fd_); }

void EventLoop::watch(int fd, uint32_t events, IoCallback callback) {
    unwatch(fd);
    uint64_t key = next_key_++;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) fail("epoll_ctl(ADD)");
    key_of_fd_[fd] = key;
    watches_[key] = Watch{std::move(callback), true};
}

void EventLoop::change_events(int fd, uint32_t events) {
    auto it = key_of_fd_.find(fd);
    if (it == key_of_fd_.end()) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = it->second;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) fail("epoll_ctl(MOD)");
}

void EventLoop::unwatch(int fd) {
    auto it = key_of_fd_.find(fd);
    if (it == key_of_fd_.end()) return;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    watches_[it->second].alive = false;
    dead_keys_.push_back(it->second);
    key_of_fd_.erase(it);
}

void EventLoop::after(uint64_t delay_ms, TimerCallback callback) {
    timers_.push(Timer{now_ms() + delay_ms, timer_sequence_++, std::move(callback)});
}

int EventLoop::next_timeout_ms() const {
    if (timers_.empty()) return -1;
    uint64_t now = now_ms();
    uint64_t due = timers_.top().due_ms;
    return due <= now ? 0 : static_cast<int>(due - now);
}

void EventLoop::run_due_timers() {
    uint64_t now = now_ms();
    while (!timers_.empty() && timers_.top().due_ms <= now) {
        TimerCallback callback = std::move(const_cast<Timer&>(timers_.top()).callback);
        timers_.pop();
        callback();
    }
}

void EventLoop::run() {
    running_ = true;
    epoll_event events[kMaxEventsPerWait];
    while (running_) {
        int n = epoll_wait(epoll_fd_, events, kMaxEventsPerWait, next_timeout_ms());
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < n && running_; ++i) {
            auto it = watches_.find(events[i].data.u64);
            if (it != watches_.end() && it->second.alive) it->second.callback(events[i].events);
        }
        for (uint64_t key : dead_keys_) watches_.erase(key);
        dead_keys_.clear();
        if (running_) run_due_timers();
    }
}

}  // namespace demper_mock
