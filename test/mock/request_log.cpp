// request_log.cpp: buffered appends to the request log.
#include "request_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace demper_mock {

namespace {
// Flush early when the buffer grows this large, so a burst cannot balloon memory between timer
// ticks.
constexpr size_t kFlushThreshold = 1 << 20;
}  // namespace

RequestLog::~RequestLog() {
    flush();
    if (fd_ >= 0) close(fd_);
}

void RequestLog::open(const std::string& file_name) {
    fd_ = ::open(file_name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0)
        throw std::runtime_error("cannot open log " + file_name + ": " + std::strerror(errno));
}

void RequestLog::begin_line(double unix_time, uint16_t egress_port) {
    char prefix[64];
    int n = std::snprintf(prefix, sizeof prefix, "%.6f\t%u\t", unix_time,
                          static_cast<unsigned>(egress_port));
    buffer_.append(prefix, static_cast<size_t>(n));
}

void RequestLog::request(double unix_time, uint16_t egress_port, std::string_view method,
                         std::string_view path, int status, size_t bytes_sent) {
    if (fd_ < 0) return;
    begin_line(unix_time, egress_port);
    buffer_ += method;
    buffer_ += '\t';
    for (char c : path) buffer_ += static_cast<unsigned char>(c) < 0x20 ? '?' : c;  // keep one line
    buffer_ += '\t';
    buffer_ += std::to_string(status);
    buffer_ += '\t';
    buffer_ += std::to_string(bytes_sent);
    buffer_ += '\n';
    if (buffer_.size() >= kFlushThreshold) flush();
}

void RequestLog::ban(double unix_time, uint16_t egress_port, std::string_view banned, int status,
                     uint64_t ban_ms) {
    if (fd_ < 0) return;
    begin_line(unix_time, egress_port);
    buffer_ += "BAN\t";
    buffer_ += banned;
    buffer_ += '\t';
    buffer_ += std::to_string(status);
    buffer_ += '\t';
    buffer_ += std::to_string(ban_ms);
    buffer_ += '\n';
}

void RequestLog::flush() {
    size_t written = 0;
    while (fd_ >= 0 && written < buffer_.size()) {
        ssize_t n = write(fd_, buffer_.data() + written, buffer_.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // disk full or similar: drop the lines rather than stop serving
        written += static_cast<size_t>(n);
    }
    buffer_.clear();
}

}  // namespace demper_mock
