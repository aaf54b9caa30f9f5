// settings.cpp: definition and validation of the demper.* settings.
#include "pg/settings.hpp"

#include <cctype>
#include <climits>
#include <cstring>
#include <initializer_list>
#include <string>

#include "core/cabinet.hpp"
#include "core/url.hpp"
#include "pg/pg_includes.hpp"

namespace demper::pg {

namespace {

// Defaults target the real marketplace (DOMAIN.md); tests and the demo point them at the mock.
constexpr const char* kDefaultOffersUrl = "https://kaspi.kz/yml/offer-view/offers/{product_code}";
constexpr const char* kDefaultAllowedHosts = "kaspi.kz,mc.shop.kaspi.kz";
constexpr const char* kDefaultUserAgent =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

char* g_database = nullptr;
bool g_enabled = true;
char* g_offers_url = nullptr;
double g_requests_per_second = 8.0;  // DOMAIN.md: ~10 req/s is safe, ~15 is banned
double g_burst = 4.0;
int g_max_inflight = 32;
int g_batch_size = 100;
int g_check_interval_s = 15 * 60;
int g_http_timeout_ms = 10000;
int g_max_attempts = 3;
int g_max_response_kb = 4096;
int g_lease_time_s = 300;
char* g_allowed_hosts = nullptr;
bool g_allow_private_addresses = false;
char* g_http_version = nullptr;
char* g_ca_file = nullptr;
char* g_user_agent = nullptr;
bool g_dry_run = false;
char* g_proxies = nullptr;
char* g_proxies_file = nullptr;
int g_max_inflight_per_host = 32;
int g_backoff_base_ms = 500;
int g_backoff_max_ms = 30000;
int g_breaker_threshold = 5;
int g_breaker_cooldown_s = 10;
int g_egress_cooldown_s = 10;
double g_max_change_percent = 0;
int g_priority_interval_s = 180;
bool g_adaptive_intervals = false;
int g_check_interval_min_s = 30;
int g_check_interval_max_s = 2 * 3600;
double g_schedule_time_scale = 1;
int g_max_offer_pages = 3;
char* g_push_url = nullptr;
double g_push_rate = 2.0;            // DOMAIN.md: ~2 req/s per merchant is safe, ~3 is banned
int g_push_ban_pause_s = 30 * 60;    // DOMAIN.md: a 429 on the push bans the merchant ~30 min
char* g_credentials_key_file = nullptr;
int g_history_retention_s = 90 * 24 * 3600;
int g_prune_interval_s = 600;
int g_log_summary_interval_s = 60;
int g_workers = 1;
int g_lock_timeout_ms = 1000;
char* g_catalogue_list_url = nullptr;
char* g_catalogue_details_url = nullptr;
int g_catalogue_sync_interval_s = 6 * 3600;
int g_catalogue_page_size = 100;
double g_cabinet_read_rate = 1.0;      // DOMAIN.md 2c: no limit was found at 1 request/s
char* g_push_job_url = nullptr;
int g_push_verify_delay_s = 120;       // DOMAIN.md 2a: a pushed price goes live in minutes
int g_push_verify_timeout_s = 30 * 60;
constexpr const char* kDefaultPushUrl = "https://mc.shop.kaspi.kz/pricefeed/upload/merchant/process";
constexpr const char* kDefaultCatalogueListUrl = core::kDefaultCabinetListUrl;
constexpr const char* kDefaultCatalogueDetailsUrl = core::kDefaultCabinetDetailsUrl;

std::string str(const char* s) { return s ? std::string(s) : std::string(); }

// offers_url_problem writes why a template is unusable into why (empty when it is fine). It holds
// the C++ objects, so that the check hook below, which calls into PostgreSQL, holds none.
void offers_url_problem(const char* tmpl, char* why, std::size_t why_size) {
    why[0] = '\0';
    try {
        std::string reason;
        if (!core::template_is_valid(tmpl, &reason))
            strlcpy(why, reason.empty() ? "not a valid URL" : reason.c_str(), why_size);
    } catch (...) {
        strlcpy(why, "could not be parsed", why_size);
    }
    // A detail is a sentence (message style guide): capital first letter, final period.
    std::size_t n = strlen(why);
    if (n > 0) {
        why[0] = static_cast<char>(toupper(static_cast<unsigned char>(why[0])));
        if (why[n - 1] != '.' && n + 1 < why_size) {
            why[n] = '.';
            why[n + 1] = '\0';
        }
    }
}

// check_offers_url rejects a template that is not an http(s) URL with a host.
bool check_offers_url(char** newval, void** extra, GucSource source) {
    if (*newval == nullptr) return true;
    char why[256];
    offers_url_problem(*newval, why, sizeof(why));
    if (why[0] != '\0') {
        GUC_check_errmsg("invalid offers URL template \"%s\"", *newval);
        GUC_check_errdetail("%s", why);
        GUC_check_errhint("Use an http or https URL with {product_code}, for example %s.", kDefaultOffersUrl);
        return false;
    }
    return true;
}

// check_proxies accepts a comma-separated list of http(s) or socks5(h) proxy URLs. Its messages
// never repeat the value: a proxy URL may carry a password.
bool check_proxies(char** newval, void** extra, GucSource source) {
    if (*newval == nullptr) return true;
    const char* p = *newval;
    int index = 0;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == '\0') break;
        const char* end = p;
        while (*end != '\0' && *end != ',') end++;
        index++;
        bool known = strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0 ||
                     strncmp(p, "socks5://", 9) == 0 || strncmp(p, "socks5h://", 10) == 0;
        const char* host = strstr(p, "://");
        if (!known || host == nullptr || host + 3 >= end) {
            GUC_check_errmsg("invalid proxy URL in demper.proxies (entry %d)", index);
            GUC_check_errhint("Use http://host:port, https://host:port, socks5://host:port or socks5h://host:port, separated by commas.");
            return false;
        }
        p = end;
    }
    return true;
}

// check_offers_url_like rejects a push URL that is not an http(s) URL with a host.
bool check_offers_url_like(char** newval, void** extra, GucSource source) {
    if (*newval == nullptr) return true;
    char why[256];
    offers_url_problem(*newval, why, sizeof(why));
    if (why[0] != '\0') {
        // The reasons are worded for templates; a push URL is a plain URL.
        std::string detail = why;
        for (std::size_t at; (at = detail.find("URL template")) != std::string::npos;)
            detail.replace(at, 12, "URL");
        GUC_check_errmsg("invalid push URL \"%s\"", *newval);
        GUC_check_errdetail("%s", detail.c_str());
        return false;
    }
    return true;
}

// check_template accepts an http(s) URL template holding the placeholders it needs, or "" where
// may_be_empty.
bool check_template(const char* value, const char* name, std::initializer_list<const char*> needed, bool may_be_empty) {
    if (value == nullptr || value[0] == '\0') {
        if (may_be_empty) return true;
        GUC_check_errmsg("%s must not be empty", name);
        return false;
    }
    if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
        GUC_check_errmsg("invalid %s \"%s\"", name, value);
        GUC_check_errdetail("It must be an http or https URL.");
        return false;
    }
    for (const char* placeholder : needed) {
        if (strstr(value, placeholder) == nullptr) {
            GUC_check_errmsg("invalid %s \"%s\"", name, value);
            GUC_check_errdetail("It must contain the placeholder %s.", placeholder);
            return false;
        }
    }
    return true;
}

bool check_catalogue_list_url(char** newval, void** extra, GucSource source) {
    return check_template(*newval, "demper.catalogue_list_url", {"{merchant_uid}", "{page}"}, false);
}

bool check_catalogue_details_url(char** newval, void** extra, GucSource source) {
    return check_template(*newval, "demper.catalogue_details_url", {"{merchant_uid}", "{sku}"}, false);
}

bool check_push_job_url(char** newval, void** extra, GucSource source) {
    return check_template(*newval, "demper.push_job_url", {"{job_id}"}, true);
}

// check_http_version accepts the versions core::parse_http_version reads.
bool check_http_version(char** newval, void** extra, GucSource source) {
    if (*newval != nullptr && core::parse_http_version(*newval)) return true;
    GUC_check_errdetail("demper.http_version must be \"1.1\" or \"2\".");
    return false;
}

// check_database rejects an empty database name.
bool check_database(char** newval, void** extra, GucSource source) {
    if (*newval == nullptr || (*newval)[0] == '\0') {
        GUC_check_errmsg("demper.database must not be empty");
        return false;
    }
    return true;
}

}  // namespace

void define_settings() {
    DefineCustomStringVariable("demper.database", "Database whose catalogue the demper worker reprices.",
                               nullptr, &g_database, "postgres", PGC_POSTMASTER, 0, check_database,
                               nullptr, nullptr);
    DefineCustomStringVariable("demper.catalogue_list_url", "URL template of the seller's offer list in the merchant cabinet.",
                               "Placeholders {merchant_uid}, {page}, {limit} and {active} (true: on sale, false: archived).",
                               &g_catalogue_list_url, kDefaultCatalogueListUrl, PGC_SIGHUP, 0,
                               check_catalogue_list_url, nullptr, nullptr);
    DefineCustomStringVariable("demper.catalogue_details_url", "URL template of one offer's details in the merchant cabinet.",
                               "Placeholders {merchant_uid} and {sku}: the offer's city prices and pickup points.",
                               &g_catalogue_details_url, kDefaultCatalogueDetailsUrl, PGC_SIGHUP, 0,
                               check_catalogue_details_url, nullptr, nullptr);
    DefineCustomIntVariable("demper.catalogue_sync_interval", "Time between two imports of a store's catalogue from its cabinet.",
                            "0 imports only when demper.sync_catalogue() asks.", &g_catalogue_sync_interval_s,
                            6 * 3600, 0, 30 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.catalogue_page_size", "Offers per page of the cabinet's offer list.", nullptr,
                            &g_catalogue_page_size, 100, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomRealVariable("demper.cabinet_read_rate", "Most cabinet reads per second per merchant.",
                             "The catalogue import and push verification share it.", &g_cabinet_read_rate, 1.0,
                             0.01, 1000.0, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("demper.push_job_url", "URL template of a price push's job, to learn whether it was applied.",
                               "Placeholder {job_id}. Empty (the default: the real cabinet's is not known) reads the "
                               "listing back through demper.catalogue_details_url instead.",
                               &g_push_job_url, "", PGC_SIGHUP, 0, check_push_job_url, nullptr, nullptr);
    DefineCustomIntVariable("demper.push_verify_delay", "Time from an accepted push to the first look at the cabinet, and between looks.",
                            nullptr, &g_push_verify_delay_s, 120, 1, 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.push_verify_timeout", "How long an accepted push may take to show in the cabinet before it counts as rejected.",
                            nullptr, &g_push_verify_timeout_s, 30 * 60, 10, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.lock_timeout",
                            "Longest wait of the worker's statements for a lock another session holds.",
                            "A product whose row is locked is skipped and written later; other waits end the "
                            "statement, which is tried again. Bounds how long a stop request can wait.",
                            &g_lock_timeout_ms, 1000, 10, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.workers", "Number of workers checking products of demper.database.",
                            "They share the due products through FOR UPDATE SKIP LOCKED; each sends at "
                            "most 1/workers of the request rate, so the total stays within the limits.",
                            &g_workers, 1, 1, 32, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("demper.enabled", "Whether the worker checks products.",
                             "When off, the worker stays connected but claims nothing.", &g_enabled,
                             true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("demper.offers_url", "URL template of the marketplace's offers endpoint.",
                               "{product_code} is replaced by the product's card id.", &g_offers_url,
                               kDefaultOffersUrl, PGC_SIGHUP, 0, check_offers_url, nullptr, nullptr);
    DefineCustomRealVariable("demper.requests_per_second",
                             "Most offer requests per second the worker sends to one host.", nullptr,
                             &g_requests_per_second, 8.0, 0.01, 100000.0, PGC_SIGHUP, 0, nullptr,
                             nullptr, nullptr);
    DefineCustomRealVariable("demper.burst", "Most requests sent back to back above the rate.",
                             "The token bucket's depth.", &g_burst, 4.0, 1.0, 100000.0, PGC_SIGHUP,
                             0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.max_inflight", "Most HTTP requests in flight at once.", nullptr,
                            &g_max_inflight, 32, 1, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.batch_size", "Most products claimed or applied in one transaction.",
                            nullptr, &g_batch_size, 100, 1, 10000, PGC_SIGHUP, 0, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("demper.check_interval", "Time between two checks of a product.", nullptr,
                            &g_check_interval_s, 15 * 60, 1, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.http_timeout", "Time limit of one HTTP request, from when it is sent.",
                            nullptr, &g_http_timeout_ms, 10000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.max_attempts", "Most attempts of one request (first try and retries).",
                            nullptr, &g_max_attempts, 3, 1, 20, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.max_response_size", "Largest response body accepted.", nullptr,
                            &g_max_response_kb, 4096, 16, 1024 * 1024, PGC_SIGHUP, GUC_UNIT_KB, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("demper.lease_time", "How long a claimed product stays leased to its worker.",
                            "A product whose worker died is checked again after this.", &g_lease_time_s,
                            300, 10, 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("demper.allowed_hosts", "Hosts the worker may contact, comma separated.",
                               "Entries are host names, IP addresses or *.domain wildcards; requests to "
                               "any other host are refused.",
                               &g_allowed_hosts, kDefaultAllowedHosts, PGC_SIGHUP, GUC_SUPERUSER_ONLY,
                               nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("demper.allow_private_addresses",
                             "Whether the worker may contact loopback, link-local and private addresses.",
                             "When off, an allowed host that is or resolves to such an address (127.0.0.1, "
                             "169.254.169.254, 10.0.0.0/8, ...) is refused; the tests and the demo run the "
                             "mock marketplace on 127.0.0.1 and turn it on.",
                             &g_allow_private_addresses, false, PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr,
                             nullptr, nullptr);
    DefineCustomStringVariable("demper.http_version", "HTTP version of the worker's requests: 1.1 or 2.",
                               "2 negotiates HTTP/2 over https and falls back to HTTP/1.1 when the server "
                               "does not offer it.",
                               &g_http_version, "1.1", PGC_SIGHUP, 0, check_http_version, nullptr, nullptr);
    DefineCustomStringVariable("demper.ca_file", "CA bundle used to verify the marketplace's TLS certificate.",
                               "Empty means the system's default bundle.", &g_ca_file, "", PGC_SIGHUP,
                               GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("demper.user_agent", "User-Agent header of the worker's requests.", nullptr,
                               &g_user_agent, kDefaultUserAgent, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("demper.dry_run", "Record decisions without changing any price.", nullptr,
                             &g_dry_run, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("demper.proxies", "Proxy URLs to send requests through, comma separated.",
                               "Each proxy is an egress with its own rate budget; empty means direct.",
                               &g_proxies, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_proxies, nullptr,
                               nullptr);
    DefineCustomStringVariable("demper.proxies_file",
                               "File of proxy URLs with their credentials, one per line.",
                               "Read by the worker at start and on reload; it must be readable by its owner only. "
                               "PostgreSQL logs every new value of demper.proxies, so credentials belong here.",
                               &g_proxies_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.max_inflight_per_host", "Most HTTP requests in flight to one host.",
                            nullptr, &g_max_inflight_per_host, 32, 1, 10000, PGC_SIGHUP, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("demper.backoff_base", "First retry delay (exponential back-off with full jitter).",
                            nullptr, &g_backoff_base_ms, 500, 1, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("demper.backoff_max", "Longest retry delay; also caps Retry-After.", nullptr,
                            &g_backoff_max_ms, 30000, 1, 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("demper.breaker_threshold",
                            "Consecutive failures that open a host's circuit breaker.", nullptr,
                            &g_breaker_threshold, 5, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.breaker_cooldown", "How long an open circuit breaker waits before a probe.",
                            nullptr, &g_breaker_cooldown_s, 10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("demper.egress_cooldown", "How long an egress rests after a ban signal.",
                            "A ban signal is a 403, 429 or 526 answer.", &g_egress_cooldown_s, 10, 1, 3600,
                            PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomRealVariable("demper.max_change_percent",
                             "Largest price move of one decision, in percent of the current price.",
                             "0 means no cap; a product's own max_change_percent wins.",
                             &g_max_change_percent, 0, 0, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.priority_interval", "Time between two checks of a priority product.",
                            nullptr, &g_priority_interval_s, 180, 1, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("demper.adaptive_intervals",
                             "Check each product as often as its competitors move, within its bounds.",
                             "Off: every product every demper.check_interval (or its own check_interval). On: "
                             "the interval follows how often the product's cheapest competitors changed and what "
                             "is at stake, the whole catalogue fitting the request budget.",
                             &g_adaptive_intervals, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.check_interval_min",
                            "Shortest time between two checks of a product under the adaptive schedule.",
                            "A store's or product's check_interval_min wins.", &g_check_interval_min_s, 30, 1,
                            7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.check_interval_max",
                            "Longest time between two checks of a product under the adaptive schedule.",
                            "A store's or product's check_interval_max wins; above check_interval_min, or it "
                            "wins over it.",
                            &g_check_interval_max_s, 2 * 3600, 1, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);
    DefineCustomRealVariable("demper.schedule_time_scale",
                             "For simulated markets whose clock runs this many times faster than the wall clock, "
                             "e.g. the mock's market: divides the adaptive schedule's time constants.",
                             "A developer setting: 1 for a real marketplace.", &g_schedule_time_scale, 1, 1, 1000,
                             PGC_SIGHUP, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.max_offer_pages",
                            "Most pages of 64 offers read for one check.",
                            "Further pages are read only while the rule needs more competitors.",
                            &g_max_offer_pages, 3, 1, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("demper.push_url", "URL of the marketplace's price push endpoint.", nullptr,
                               &g_push_url, kDefaultPushUrl, PGC_SIGHUP, 0, check_offers_url_like,
                               nullptr, nullptr);
    DefineCustomRealVariable("demper.push_rate", "Most price pushes per second per merchant.", nullptr,
                             &g_push_rate, 2.0, 0.01, 100.0, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.push_ban_pause", "How long a merchant's pushes pause after a 429.",
                            nullptr, &g_push_ban_pause_s, 30 * 60, 1, 24 * 3600, PGC_SIGHUP, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    DefineCustomStringVariable("demper.credentials_key_file",
                               "File holding the 32-byte key that seals stores' credentials.",
                               "32 raw bytes or 64 hex digits, readable by the server's user only.",
                               &g_credentials_key_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr,
                               nullptr, nullptr);
    DefineCustomIntVariable("demper.history_retention",
                            "How long price history, finished pushes and decided proposals are kept.",
                            nullptr, &g_history_retention_s, 90 * 24 * 3600, 60, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("demper.prune_interval", "Time between two prunes of old history.", nullptr,
                            &g_prune_interval_s, 600, 1, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("demper.log_summary_interval",
                            "Time between two log lines summarising failed checks per host.", nullptr,
                            &g_log_summary_interval_s, 60, 1, 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);
    MarkGUCPrefixReserved("demper");
}

std::vector<std::string> split_list(const std::string& list) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t end = list.find(',', start);
        if (end == std::string::npos) end = list.size();
        std::size_t b = list.find_first_not_of(" \t", start);
        std::size_t e = list.find_last_not_of(" \t", end == 0 ? 0 : end - 1);
        if (b != std::string::npos && b < end && e != std::string::npos && e >= b)
            out.push_back(list.substr(b, e - b + 1));
        start = end + 1;
    }
    return out;
}

const char* database_setting() { return g_database; }
int workers_setting() { return g_workers; }
const char* credentials_key_file_setting() { return g_credentials_key_file ? g_credentials_key_file : ""; }

core::ScheduleTuning schedule_tuning(const Settings& settings) {
    return core::time_scaled(core::ScheduleTuning{}, settings.schedule_time_scale);
}

Settings current_settings() {
    Settings s;
    s.database = str(g_database);
    s.enabled = g_enabled;
    s.offers_url = str(g_offers_url);
    s.requests_per_second = g_requests_per_second;
    s.burst = g_burst;
    s.max_inflight = g_max_inflight;
    s.batch_size = g_batch_size;
    s.check_interval_s = g_check_interval_s;
    s.http_timeout_ms = g_http_timeout_ms;
    s.max_attempts = g_max_attempts;
    s.max_response_kb = g_max_response_kb;
    s.lease_time_s = g_lease_time_s;
    s.allowed_hosts = str(g_allowed_hosts);
    s.allow_private_addresses = g_allow_private_addresses;
    s.http_version = core::parse_http_version(str(g_http_version)).value_or(core::HttpVersion::http1_1);
    s.ca_file = str(g_ca_file);
    s.user_agent = str(g_user_agent);
    s.dry_run = g_dry_run;
    s.proxies = str(g_proxies);
    s.proxies_file = str(g_proxies_file);
    s.max_inflight_per_host = g_max_inflight_per_host;
    s.backoff_base_ms = g_backoff_base_ms;
    s.backoff_max_ms = g_backoff_max_ms;
    s.breaker_threshold = g_breaker_threshold;
    s.breaker_cooldown_s = g_breaker_cooldown_s;
    s.egress_cooldown_s = g_egress_cooldown_s;
    s.max_change_percent = g_max_change_percent;
    s.priority_interval_s = g_priority_interval_s;
    s.max_offer_pages = g_max_offer_pages;
    s.push_url = str(g_push_url);
    s.push_rate = g_push_rate;
    s.push_ban_pause_s = g_push_ban_pause_s;
    s.credentials_key_file = str(g_credentials_key_file);
    s.history_retention_s = g_history_retention_s;
    s.prune_interval_s = g_prune_interval_s;
    s.log_summary_interval_s = g_log_summary_interval_s;
    s.workers = g_workers;
    s.lock_timeout_ms = g_lock_timeout_ms;
    s.catalogue_list_url = str(g_catalogue_list_url);
    s.catalogue_details_url = str(g_catalogue_details_url);
    s.catalogue_sync_interval_s = g_catalogue_sync_interval_s;
    s.catalogue_page_size = g_catalogue_page_size;
    s.cabinet_read_rate = g_cabinet_read_rate;
    s.push_job_url = str(g_push_job_url);
    s.push_verify_delay_s = g_push_verify_delay_s;
    s.push_verify_timeout_s = g_push_verify_timeout_s;
    s.adaptive_intervals = g_adaptive_intervals;
    s.check_interval_min_s = g_check_interval_min_s;
    s.check_interval_max_s = g_check_interval_max_s;
    s.schedule_time_scale = g_schedule_time_scale;
    return s;
}

}  // namespace demper::pg
