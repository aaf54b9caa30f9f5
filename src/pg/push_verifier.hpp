// push_verifier.hpp: knowing that a price went live. The marketplace answers a push with a job id
// and applies it minutes later, or not at all; the verifier looks at the cabinet after
// demper.push_verify_delay and again until demper.push_verify_timeout: through the job (when
// demper.push_job_url says where jobs are read) and through the listing's details, as the cabinet
// shows them. A push is verified when the cabinet shows the pushed price in its city, rejected
// when it does not by the timeout (with what it shows), and off_sale when the offer went off sale:
// that is lost sales, so it is said loudly (push_status, demper_stats, a WARNING). One worker
// (slot 0) verifies; its reads share the merchant's cabinet read budget with the catalogue import.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "pg/catalog.hpp"
#include "pg/credentials.hpp"
#include "pg/request_router.hpp"
#include "pg/settings.hpp"
#include "pg/worker_status.hpp"

namespace demper::pg {

class PushVerifier : public HttpClient {
public:
    PushVerifier(const Settings& settings, Catalog& catalog, RequestRouter& router, StatusReport& report,
                 const Credentials& credentials, CabinetReadBudget& reads)
        : settings_(settings),
          catalog_(catalog),
          router_(router),
          report_(report),
          credentials_(credentials),
          reads_(reads) {}

    // step claims the pushes due for a look, sends the reads the budget allows, and records what
    // was found.
    void step(double now);
    void on_response(core::HttpResponse&& response) override;
    // drop_unrecorded forgets results whose write failed (their rows are looked at again later).
    void drop_unrecorded() { results_.clear(); }
    double next_wake_at(double now) const;

private:
    struct Look {
        PushToVerify push;
        bool job_done = false;  // the job finished (or there is no job to read): read the listing
    };

    void send(double now);
    void on_job(Look&& look, const core::HttpResponse& response);
    void on_details(Look&& look, const core::HttpResponse& response);
    void found(const Look& look, VerifyResult result, std::string detail);
    void record();

    const Settings& settings_;
    Catalog& catalog_;
    RequestRouter& router_;
    StatusReport& report_;
    const Credentials& credentials_;
    CabinetReadBudget& reads_;
    std::deque<Look> waiting_;                       // claimed, read not sent yet
    std::unordered_map<std::uint64_t, Look> reading_;  // request id -> look
    std::vector<VerifyRow> results_;
    double next_claim_at_ = 0;
};

}  // namespace demper::pg
