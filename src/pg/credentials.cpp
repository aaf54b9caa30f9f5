// credentials.cpp: the credentials key and the merchants' cabinet read budgets (credentials.hpp).
#include "pg/credentials.hpp"

#include <openssl/crypto.h>

#include <stdexcept>
#include <string_view>
#include <utility>

#include "core/cabinet.hpp"
#include "core/push.hpp"
#include "pg/guard.hpp"

namespace demper::pg {

void Credentials::reload() {
    key_.reset();
    if (settings_.credentials_key_file.empty()) return;
    std::string problem;
    try {
        key_.emplace(core::SecretKey::from_file(settings_.credentials_key_file));
    } catch (const std::exception& e) {
        problem = e.what();
    }
    if (!problem.empty() && problem != key_problem_) {
        key_problem_ = problem;
        const char* msg = key_problem_.c_str();
        pg_guard([msg] {
            ereport(WARNING, (errmsg("demper worker cannot read its credentials key: %s", msg),
                              errdetail("No price is pushed and no catalogue imported until the key can be read.")));
        });
    }
    if (problem.empty()) key_problem_.clear();
}

template <typename Build>
std::optional<std::vector<std::string>> Credentials::headers(const std::string& sealed, std::int64_t store_id,
                                                             Build&& build) const {
    if (!key_) return std::nullopt;
    std::optional<std::string> cookies = core::open(*key_, sealed, "store:" + std::to_string(store_id));
    if (!cookies) return std::nullopt;
    std::optional<std::vector<std::string>> out;
    const std::size_t newline = cookies->find('\n');
    if (newline != std::string::npos) {
        try {
            out = build(std::string_view(*cookies).substr(0, newline), std::string_view(*cookies).substr(newline + 1));
        } catch (const std::invalid_argument&) {
            out.reset();
        }
    }
    OPENSSL_cleanse(cookies->data(), cookies->size());
    return out;
}

std::optional<std::vector<std::string>> Credentials::push_headers(const std::string& sealed,
                                                                  std::int64_t store_id) const {
    return headers(sealed, store_id, [](std::string_view session, std::string_view sid) {
        return core::push_headers(session, sid);
    });
}

std::optional<std::vector<std::string>> Credentials::cabinet_headers(const std::string& sealed,
                                                                     std::int64_t store_id) const {
    return headers(sealed, store_id, [](std::string_view session, std::string_view sid) {
        return core::cabinet_headers(session, sid);
    });
}

core::TokenBucket& CabinetReadBudget::bucket(const std::string& merchant) {
    auto [it, inserted] = buckets_.try_emplace(merchant, settings_.cabinet_read_rate, 1.0);
    return it->second;
}

bool CabinetReadBudget::try_take(const std::string& merchant, double now) { return bucket(merchant).try_take(now); }

double CabinetReadBudget::next_at(const std::string& merchant, double now) {
    return bucket(merchant).next_available(now);
}

void CabinetReadBudget::settings_changed() {
    for (auto& [merchant, b] : buckets_) b.configure(settings_.cabinet_read_rate, 1.0);
}

}  // namespace demper::pg
