// credentials.hpp: what the parts of the worker that talk to the seller's cabinet share: the key
// that opens the stores' sealed cookies (demper.credentials_key_file), and each merchant's budget
// of cabinet reads (demper.cabinet_read_rate, shared by the catalogue import and push verification).
//
// Secrets: a store's cookies are opened only to build the headers of one request and are wiped at
// once; no message here holds a cookie or key material.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/crypto.hpp"
#include "core/rate_limit.hpp"
#include "pg/settings.hpp"

namespace demper::pg {

class Credentials {
public:
    explicit Credentials(const Settings& settings) : settings_(settings) { reload(); }

    // reload reads demper.credentials_key_file again; a problem is logged once.
    void reload();
    bool usable() const { return key_.has_value(); }
    // push_headers / cabinet_headers open a store's sealed cookies for one request; nullopt when
    // they do not open with the current key (or hold characters a header must not).
    std::optional<std::vector<std::string>> push_headers(const std::string& sealed, std::int64_t store_id) const;
    std::optional<std::vector<std::string>> cabinet_headers(const std::string& sealed, std::int64_t store_id) const;

private:
    template <typename Build>
    std::optional<std::vector<std::string>> headers(const std::string& sealed, std::int64_t store_id,
                                                    Build&& build) const;

    const Settings& settings_;
    std::optional<core::SecretKey> key_;
    std::string key_problem_;  // the last key file problem logged (no key material in it)
};

// CabinetReadBudget is each merchant's token bucket of cabinet reads.
class CabinetReadBudget {
public:
    explicit CabinetReadBudget(const Settings& settings) : settings_(settings) {}
    bool try_take(const std::string& merchant, double now);
    // next_at is when a read for merchant may go (now or later).
    double next_at(const std::string& merchant, double now);
    void settings_changed();

private:
    core::TokenBucket& bucket(const std::string& merchant);
    const Settings& settings_;
    std::map<std::string, core::TokenBucket> buckets_;
};

}  // namespace demper::pg
