// main.cpp: demper_mock, the mock Kaspi.kz marketplace that demper's tests and benchmarks talk to.
//
// A real HTTP/1.1 server on loopback, single-threaded on one epoll loop, that serves the offers,
// price-push and merchant-cabinet endpoints as DOMAIN.md describes, misbehaves on request (faults,
// bans, HTTP/2 refusal) and records what it saw (stats, pushes, a request log). Usage and the
// control API: test/mock/README.md.
//
// Files: event_loop (epoll + timers), http_message/http_server (HTTP/1.1), http2 (the h2c
// refusal), offer_book (books), cabinet (sellers' catalogues and jobs), faults, ban_tracker,
// marketplace (the emulated endpoints), control_api (/_mock/), request_log.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "control_api.hpp"
#include "event_loop.hpp"
#include "http_server.hpp"
#include "marketplace.hpp"
#include "offer_book.hpp"
#include "request_log.hpp"

namespace demper_mock {
namespace {

constexpr uint64_t kLogFlushIntervalMs = 200;

constexpr const char* kUsage =
    "usage: demper_mock --listen 127.0.0.1:PORT [--listen 127.0.0.1:PORT2 ...] [--port-file FILE]\n"
    "                   [--books FILE] [--synthetic N] [--log FILE] [--own-merchant ID]\n"
    "                   [--cabinet FILE]\n"
    "Each --listen is one egress (PORT 0 picks a free port). See test/mock/README.md.\n";

struct Options {
    std::vector<std::pair<std::string, uint16_t>> listens;
    std::string port_file;
    std::vector<std::string> book_files;
    std::vector<std::string> cabinet_files;
    uint64_t synthetic = 0;
    std::string log_file;
    std::string own_merchant;
};

template <typename Number>
Number parse_number(const std::string& text, const std::string& option) {
    Number value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        throw std::runtime_error(option + ": not a valid number: " + text);
    }
    return value;
}

std::pair<std::string, uint16_t> parse_listen(const std::string& text) {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos)
        throw std::runtime_error("--listen expects HOST:PORT, got " + text);
    return {text.substr(0, colon), parse_number<uint16_t>(text.substr(colon + 1), "--listen")};
}

Options parse_options(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string name = argv[i];
        if (name == "--help" || name == "-h") {
            std::cout << kUsage;
            std::exit(0);
        }
        if (i + 1 >= argc) throw std::runtime_error(name + " needs a value (or is unknown)");
        std::string value = argv[++i];
        if (name == "--listen") {
            options.listens.push_back(parse_listen(value));
        } else if (name == "--port-file") {
            options.port_file = value;
        } else if (name == "--books") {
            options.book_files.push_back(value);
        } else if (name == "--cabinet") {
            options.cabinet_files.push_back(value);
        } else if (name == "--synthetic") {
            options.synthetic = parse_number<uint64_t>(value, name);
        } else if (name == "--log") {
            options.log_file = value;
        } else if (name == "--own-merchant") {
            options.own_merchant = value;
        } else {
            throw std::runtime_error("unknown option " + name);
        }
    }
    if (options.listens.empty()) throw std::runtime_error("at least one --listen is required");
    return options;
}

// write_port_file writes the bound ports through a temporary file and a rename, so that a test
// polling for the file never reads it half-written.
void write_port_file(const std::string& file_name, const std::vector<uint16_t>& ports) {
    std::string temporary = file_name + ".tmp";
    FILE* file = std::fopen(temporary.c_str(), "w");
    if (file == nullptr) throw std::runtime_error("cannot write " + temporary);
    for (uint16_t port : ports) std::fprintf(file, "%u\n", static_cast<unsigned>(port));
    bool written = std::fclose(file) == 0;
    if (!written || std::rename(temporary.c_str(), file_name.c_str()) != 0) {
        throw std::runtime_error("cannot write " + file_name);
    }
}

// MockRouter sends /_mock/ requests to the control API and everything else to the marketplace.
class MockRouter : public RequestHandler {
  public:
    MockRouter(Marketplace& marketplace, ControlApi& control)
        : marketplace_(marketplace), control_(control) {}

    Reply handle(const HttpRequest& request, const Arrival& arrival) override {
        if (request.path.compare(0, kControlPrefix.size(), kControlPrefix) == 0) {
            return control_.handle(request);
        }
        return marketplace_.handle(request, arrival);
    }

    void on_reply(std::string_view method, std::string_view path, const Arrival& arrival,
                  int status, size_t wire_bytes) override {
        marketplace_.record_reply(method, path, arrival, status, wire_bytes);
    }

  private:
    Marketplace& marketplace_;
    ControlApi& control_;
};

// watch_stop_signals turns SIGTERM and SIGINT into a readable fd on the loop, which stops it.
int watch_stop_signals(EventLoop& loop) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    int fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) throw std::runtime_error("signalfd failed");
    loop.watch(fd, EPOLLIN, [&loop](uint32_t) { loop.stop(); });
    return fd;
}

void flush_log_periodically(EventLoop& loop, RequestLog& log) {
    loop.after(kLogFlushIntervalMs, [&loop, &log]() {
        log.flush();
        flush_log_periodically(loop, log);
    });
}

void load_cabinets(const Options& options, CabinetStore& cabinets) {
    for (const auto& file : options.cabinet_files) {
        uint64_t started = now_ms();
        size_t offers = cabinets.load_jsonl(file);
        std::cerr << "demper_mock: loaded " << offers << " cabinet offers from " << file << " in "
                  << (now_ms() - started) << " ms\n";
    }
}

void load_catalogue(const Options& options, OfferCatalogue& catalogue) {
    catalogue.set_synthetic_limit(options.synthetic);
    catalogue.set_own_merchant(options.own_merchant);
    for (const auto& file : options.book_files) {
        uint64_t started = now_ms();
        size_t offers = catalogue.load_tsv(file);
        std::cerr << "demper_mock: loaded " << offers << " offers from " << file << " in "
                  << (now_ms() - started) << " ms\n";
    }
}

int run(int argc, char** argv) {
    Options options = parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);  // a client gone mid-response must not kill the mock
    // Many clients (several workers, each with hundreds of connections) need more descriptors
    // than the usual soft limit of 1,024: take what the hard limit allows.
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    EventLoop loop;
    int signal_fd = watch_stop_signals(loop);

    OfferCatalogue catalogue;
    load_catalogue(options, catalogue);
    CabinetStore cabinets;
    load_cabinets(options, cabinets);
    RequestLog log;
    if (!options.log_file.empty()) log.open(options.log_file);
    ProtocolSwitches switches;
    Marketplace marketplace(catalogue, cabinets, log);
    ControlApi control(marketplace, catalogue, cabinets, switches, log);
    MockRouter router(marketplace, control);
    HttpServer server(loop, router, switches);

    std::vector<uint16_t> ports;
    for (const auto& [host, port] : options.listens) ports.push_back(server.listen(host, port));
    if (!options.port_file.empty()) write_port_file(options.port_file, ports);
    std::cerr << "demper_mock: listening on";
    for (size_t i = 0; i < ports.size(); ++i)
        std::cerr << ' ' << options.listens[i].first << ':' << ports[i];
    std::cerr << '\n';

    flush_log_periodically(loop, log);
    loop.run();
    log.flush();
    loop.unwatch(signal_fd);
    close(signal_fd);
    return 0;
}

}  // namespace
}  // namespace demper_mock

int main(int argc, char** argv) {
    try {
        return demper_mock::run(argc, argv);
    } catch (const std::exception& error) {
        std::cerr << "demper_mock: " << error.what() << '\n';
        return 1;
    }
}
