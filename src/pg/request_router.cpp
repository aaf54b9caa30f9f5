// request_router.cpp: requests sent on behalf of an owner, answers routed back to it.
#include "pg/request_router.hpp"

#include <utility>
#include <vector>

namespace demper::pg {

std::string failure_text(const core::HttpResponse& r) {
    std::string text = r.error_detail.empty() ? core::error_class_name(r.error) : r.error_detail;
    if (r.status != 0 && text.find("HTTP") == std::string::npos) text += " (HTTP " + std::to_string(r.status) + ")";
    return text;
}

std::uint64_t RequestRouter::send(HttpClient& owner, core::HttpRequest request) {
    const std::uint64_t id = next_id_++;
    request.id = id;
    owners_.emplace(id, &owner);
    engine_.submit(std::move(request));
    return id;
}

void RequestRouter::deliver() {
    engine_.perform();
    for (core::HttpResponse& r : engine_.take_completed()) {
        auto it = owners_.find(r.id);
        if (it == owners_.end()) continue;  // cannot happen: every id was assigned by send()
        HttpClient* owner = it->second;
        owners_.erase(it);
        owner->on_response(std::move(r));
    }
}

}  // namespace demper::pg
