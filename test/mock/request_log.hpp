// request_log.hpp: the --log file, one line per marketplace request, for tests that compute rates.
//
// Line format (tab-separated, six columns):
//   <unix seconds with microseconds>  <egress port>  <method>  <path>  <status>  <bytes sent>
// and, when a ban starts, a line with method BAN:
//   <unix seconds>  <egress port>  BAN  <"egress" | "merchant:<uid>">  <ban status>  <ban length in
//   ms>
// The time is the request's arrival; lines are in arrival order. Lines are buffered in memory and
// written every 200 ms (the caller's timer), on POST /_mock/log/flush and on exit: writing per
// request would cost a syscall each at 20,000 requests/s.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace demper_mock {

class RequestLog {
  public:
    RequestLog() = default;
    ~RequestLog();
    RequestLog(const RequestLog&) = delete;
    RequestLog& operator=(const RequestLog&) = delete;

    // open starts logging to `file_name` (appending); throws if it cannot be opened.
    void open(const std::string& file_name);

    void request(double unix_time, uint16_t egress_port, std::string_view method,
                 std::string_view path, int status, size_t bytes_sent);
    void ban(double unix_time, uint16_t egress_port, std::string_view banned, int status,
             uint64_t ban_ms);

    // flush writes the buffered lines to the file.
    void flush();

  private:
    int fd_ = -1;
    std::string buffer_;

    void begin_line(double unix_time, uint16_t egress_port);
};

}  // namespace demper_mock
