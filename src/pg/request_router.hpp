// request_router.hpp: the worker's one HTTP engine, shared by the parts of the worker that send
// requests (the check pipeline, the publisher, later the catalogue import), with each answer
// routed back to the part that sent the request.
//
// Every request is sent on behalf of an owner (an HttpClient) and its answer goes to that owner
// and to no other: the router keeps the owner of each request id it assigned, instead of reading
// meaning into the id itself.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "core/http_engine.hpp"

namespace demper::pg {

// HttpClient is a part of the worker that sends requests through the router.
class HttpClient {
public:
    virtual ~HttpClient() = default;
    // on_response takes the answer (or the failure) of one of this client's requests.
    virtual void on_response(core::HttpResponse&& response) = 0;
};

// failure_text says why a request failed, in one short line for last_error and the log (never a
// header, so never a cookie): the engine's detail, or the error class, with the HTTP status.
std::string failure_text(const core::HttpResponse& response);

class RequestRouter {
public:
    explicit RequestRouter(core::HttpEngine& engine) : engine_(engine) {}

    // send submits a request for owner and returns the id it was given.
    std::uint64_t send(HttpClient& owner, core::HttpRequest request);
    // cancel ends a pending request with ErrorClass::canceled; its owner is told as usual.
    bool cancel(std::uint64_t id, const std::string& detail) { return engine_.cancel(id, detail); }
    // deliver does the engine's due work and hands every finished request to its owner.
    void deliver();
    std::size_t pending() const { return owners_.size(); }

private:
    core::HttpEngine& engine_;
    std::unordered_map<std::uint64_t, HttpClient*> owners_;
    std::uint64_t next_id_ = 1;
};

}  // namespace demper::pg
