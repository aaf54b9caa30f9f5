// settings.hpp: demper's GUCs (all under the reserved "demper." prefix). PGC_POSTMASTER for what
// decides the workers; PGC_SIGHUP for everything a worker reads while it runs; secrets and TLS
// paths are superuser-only. The README has the table of all of them.
#pragma once

#include <string>
#include <vector>

#include "core/http_engine.hpp"
#include "core/schedule.hpp"

namespace demper::pg {

// The values in force in this process; re-read after ProcessConfigFile().
struct Settings {
    std::string database;
    bool enabled;
    std::string offers_url;
    double requests_per_second;
    double burst;
    int max_inflight;
    int batch_size;
    int check_interval_s;
    int http_timeout_ms;
    int max_attempts;
    int max_response_kb;
    int lease_time_s;
    std::string allowed_hosts;
    bool allow_private_addresses;
    core::HttpVersion http_version;
    std::string ca_file;
    std::string user_agent;
    bool dry_run;
    std::string proxies;
    std::string proxies_file;  // proxy URLs with credentials, one per line (mode 0600)
    int max_inflight_per_host;
    int backoff_base_ms;
    int backoff_max_ms;
    int breaker_threshold;
    int breaker_cooldown_s;
    int egress_cooldown_s;
    double max_change_percent;   // 0 = no cap unless a product sets one
    int priority_interval_s;
    int max_offer_pages;
    std::string push_url;
    double push_rate;           // pushes per second per merchant
    int push_ban_pause_s;
    std::string credentials_key_file;
    int history_retention_s;
    int prune_interval_s;
    int log_summary_interval_s;
    int workers;
    int lock_timeout_ms;        // longest wait for a row lock in the worker's statements
    // The seller's cabinet: catalogue import and push verification.
    std::string catalogue_list_url;      // template: {merchant_uid} {page} {limit} {active}
    std::string catalogue_details_url;   // template: {merchant_uid} {sku}
    int catalogue_sync_interval_s;       // 0 = only when asked (sync_catalogue)
    int catalogue_page_size;
    double cabinet_read_rate;            // cabinet reads per second per merchant
    std::string push_job_url;            // template {job_id}; "" = read the listing back instead
    int push_verify_delay_s;             // first look, and between looks
    int push_verify_timeout_s;           // not shown by then: rejected
    // The adaptive schedule (core/schedule.hpp).
    bool adaptive_intervals;             // off: every product every check_interval (or its own)
    int check_interval_min_s;            // the shortest and longest interval unless a store or
    int check_interval_max_s;            // product sets its own
    double schedule_time_scale;          // a simulated market's clock runs this many times faster
};

void define_settings();
// split_list splits a comma-separated list (a setting, merchant ids, feed store ids) into its
// trimmed, non-empty entries.
std::vector<std::string> split_list(const std::string& list);
// database_setting is demper.database as PostgreSQL holds it (for BackgroundWorkerInitializeConnection).
const char* database_setting();
// credentials_key_file_setting is demper.credentials_key_file ("" when unset).
const char* credentials_key_file_setting();
// workers_setting is demper.workers (fixed at server start).
int workers_setting();
Settings current_settings();
// schedule_tuning is the adaptive schedule's tuning under these settings (the defaults, on the
// clock of demper.schedule_time_scale): the checks schedule with it and the pressure is solved
// with it, so both read it here.
core::ScheduleTuning schedule_tuning(const Settings& settings);

}  // namespace demper::pg
