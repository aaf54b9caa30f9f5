// push_verifier.cpp: looking at the cabinet after a push (see push_verifier.hpp).
#include "pg/push_verifier.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "core/cabinet.hpp"
#include "core/push.hpp"
#include "pg/guard.hpp"
#include "pg/shared_state.hpp"

namespace demper::pg {

namespace {

constexpr double kClaimSeconds = 1.0;  // how often to look for pushes due for a look
constexpr int kClaimLimit = 128;  // looks in progress at once (reads in flight or waiting for the budget)


// job_url expands demper.push_job_url for a job id ("" when no job can be read).
std::string job_url(const Settings& s, const std::string& job_id) {
    if (s.push_job_url.empty() || job_id.empty()) return std::string();
    return core::push_job_url(s.push_job_url, job_id);
}

}  // namespace

void PushVerifier::step(double now) {
    if (now >= next_claim_at_ && waiting_.size() + reading_.size() < kClaimLimit) {
        next_claim_at_ = now + kClaimSeconds;
        std::vector<PushToVerify> due;
        if (credentials_.usable())
            due = catalog_.claim_verifications(kClaimLimit - static_cast<int>(waiting_.size() + reading_.size()),
                                               settings_.lease_time_s);
        if (static_cast<int>(due.size()) == kClaimLimit) next_claim_at_ = now;  // more may be due
        for (PushToVerify& p : due) {
            Look look;
            look.job_done = job_url(settings_, p.job_id).empty();
            look.push = std::move(p);
            waiting_.push_back(std::move(look));
        }
    }
    send(now);
    record();
}

// send sends the reads each merchant's budget allows now, oldest first.
void PushVerifier::send(double now) {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (!reads_.try_take(it->push.merchant_id, now)) {
            ++it;
            continue;
        }
        Look look = std::move(*it);
        it = waiting_.erase(it);
        std::optional<std::vector<std::string>> headers =
            credentials_.cabinet_headers(look.push.sealed_credentials, look.push.store_id);
        if (!headers) {
            found(look, VerifyResult::again, "the store's credentials cannot be opened with the current key");
            continue;
        }
        core::HttpRequest request;
        request.method = "GET";
        request.url = look.job_done
                          ? core::cabinet_details_url(settings_.catalogue_details_url, look.push.merchant_id, look.push.sku)
                          : job_url(settings_, look.push.job_id);
        request.headers = std::move(*headers);
        reading_.emplace(router_.send(*this, std::move(request)), std::move(look));
    }
}

void PushVerifier::on_response(core::HttpResponse&& response) {
    auto it = reading_.find(response.id);
    if (it == reading_.end()) return;
    Look look = std::move(it->second);
    reading_.erase(it);
    if (look.job_done)
        on_details(std::move(look), response);
    else
        on_job(std::move(look), response);
}

// on_job reads the push's job: still running, look again later; failed, or the item refused or
// archived, the push is rejected or the offer off sale; done, read the listing itself.
void PushVerifier::on_job(Look&& look, const core::HttpResponse& response) {
    if (response.error != core::ErrorClass::none) {
        found(look, VerifyResult::again, "could not read the push's job: " + failure_text(response));
        return;
    }
    core::PushJobParse job = core::parse_push_job(response.body);
    if (!job.ok) {
        found(look, VerifyResult::again, "could not read the push's job: " + job.error);
        return;
    }
    if (job.job.state == core::PushJobState::pending) {
        found(look, VerifyResult::again, "the push's job is still running");
        return;
    }
    // What the job did to this listing says more than the job's overall state.
    for (const core::PushJobItem& item : job.job.items) {
        if (item.sku != look.push.sku) continue;
        const std::string why = item.reason.empty() ? item.result : item.result + ": " + item.reason;
        if (item.result == "archived") {
            found(look, VerifyResult::off_sale, "the marketplace took the offer off sale: " + why);
            return;
        }
        if (item.result != "updated") {
            found(look, VerifyResult::rejected, "the push's job did not apply it: " + why);
            return;
        }
    }
    if (job.job.state == core::PushJobState::failed) {
        found(look, VerifyResult::rejected,
              "the push's job failed" + (job.job.message.empty() ? std::string() : ": " + job.job.message));
        return;
    }
    look.job_done = true;  // applied, says the job: read the listing back to see the price
    waiting_.push_front(std::move(look));
}

// on_details compares the listing as the cabinet shows it with the pushed price.
void PushVerifier::on_details(Look&& look, const core::HttpResponse& response) {
    if (response.error != core::ErrorClass::none) {
        found(look, VerifyResult::again, "could not read the listing back: " + failure_text(response));
        return;
    }
    core::CabinetDetailsParse details = core::parse_cabinet_details(response.body);
    if (!details.ok) {
        found(look, VerifyResult::again, "could not read the listing back: " + details.error);
        return;
    }
    if (details.details.archived.value_or(false)) {
        found(look, VerifyResult::off_sale, "the cabinet shows the offer off sale (archived) after the push");
        return;
    }
    for (const core::CityPrice& city : details.details.cities) {
        if (city.city_id != look.push.city_id) continue;
        if (city.price == look.push.pushed_price) {
            found(look, VerifyResult::verified, std::string());
        } else {
            found(look, VerifyResult::again,
                  "the cabinet shows " + (city.price ? std::to_string(*city.price) : std::string("no price")) +
                      " in city " + city.city_id + ", not the pushed " + std::to_string(look.push.pushed_price));
        }
        return;
    }
    found(look, VerifyResult::again, "the cabinet does not list the offer in city " + look.push.city_id);
}

// found records a look's result; "again" becomes rejected once the push is older than
// demper.push_verify_timeout, with what the last look saw.
void PushVerifier::found(const Look& look, VerifyResult result, std::string detail) {
    if (result == VerifyResult::again && look.push.age_s + settings_.push_verify_delay_s > settings_.push_verify_timeout_s) {
        result = VerifyResult::rejected;
        detail = "not shown in the cabinet " + std::to_string(settings_.push_verify_timeout_s) + " s after the push: " + detail;
    }
    if (result == VerifyResult::off_sale) {
        const long long store = look.push.store_id;
        const char* sku = look.push.sku.c_str();
        const char* why = detail.c_str();
        pg_guard([&] {
            ereport(WARNING, (errmsg("demper: offer \"%s\" of store %lld went off sale after a price push: %s", sku, store, why),
                              errhint("Check its availability (pickup points) in the seller's cabinet; demper.push_status counts such offers.")));
        });
    }
    VerifyRow row;
    row.outbox_id = look.push.outbox_id;
    row.result = result;
    row.detail = std::move(detail);
    results_.push_back(std::move(row));
}

// record writes the results found so far (one short transaction) and counts them.
void PushVerifier::record() {
    if (results_.empty()) return;
    std::vector<VerifyRow> batch;
    batch.swap(results_);
    const VerifyCounts c = catalog_.apply_verifications(batch, settings_.push_verify_delay_s);
    counter_add(kPushesVerified, static_cast<std::uint64_t>(c.verified));
    counter_add(kPushesRejected, static_cast<std::uint64_t>(c.rejected));
    counter_add(kOffersOffSale, static_cast<std::uint64_t>(c.off_sale));
}

double PushVerifier::next_wake_at(double now) const {
    double at = std::max(now, next_claim_at_);
    for (const Look& look : waiting_) at = std::min(at, reads_.next_at(look.push.merchant_id, now));
    return at;
}

}  // namespace demper::pg
