// url: the small amount of URL handling the fetch step needs, written to be hard to fool.
//
// Vocabulary: a *URL template* is a marketplace endpoint with `{product_code}` placeholders
// (for example "https://kaspi.kz/yml/offer-view/offers/{product_code}"); *expanding* it gives the
// URL of one check. The *host allow-list* names the only hosts a request may go to (SSRF guard):
// the engine refuses every other host, including redirect targets. The *address class* of the
// address a host resolves to is the second guard: a listed name that resolves to the loopback
// interface, the cloud metadata service or the LAN is refused too (see http_engine.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demper::core {

// UrlParts is an absolute http(s) URL split into what a connection needs.
// `host` is lower-cased, has no trailing dot, and an IPv6 literal is kept without its brackets
// ("::1"). `path_and_query` always starts with '/' and never holds a fragment.
struct UrlParts {
    std::string scheme;  // "http" or "https"
    std::string host;
    int port = 0;  // explicit port, or 80 / 443 by scheme
    std::string path_and_query;
};

// same_origin reports whether two URLs share scheme, host and port (RFC 6454's origin).
bool same_origin(const UrlParts& a, const UrlParts& b);

// RedirectKind is what following a redirect from one URL to another means for the request.
//   same_origin    scheme, host and port unchanged: the request goes on as it is
//   cross_origin   the scheme, host or port changes: credentials must not follow
//   downgrade      https to http (any host): refused, the request would leave TLS
enum class RedirectKind { same_origin, cross_origin, downgrade };
RedirectKind classify_redirect(const UrlParts& from, const UrlParts& to);

// parse_url accepts only absolute http/https URLs with a host. It rejects, rather than guesses at,
// anything a browser and a server could read differently: userinfo ("http://kaspi.kz@evil.com/"),
// backslashes, whitespace or control characters, percent-escapes or other odd characters in the
// host, ports outside 1..65535. Scheme and host are lower-cased; default ports are 80 and 443.
std::optional<UrlParts> parse_url(std::string_view url);

// percent_encode_component keeps [A-Za-z0-9._~-] and writes every other byte as %XX.
std::string percent_encode_component(std::string_view raw);

// expand_url_template replaces every "{product_code}" in `tmpl` with the percent-encoded code.
std::string expand_url_template(std::string_view tmpl, std::string_view product_code);

// template_is_valid expands `tmpl` with the code "1" and checks that the result parses as an
// http/https URL with a host. On failure, `*why` (when non-null) gets a short reason.
bool template_is_valid(std::string_view tmpl, std::string* why);

// AddressClass is the kind of network an IP address belongs to. Only `global` addresses are
// contacted unless private addresses are explicitly allowed.
//   loopback         127.0.0.0/8, ::1
//   link_local       169.254.0.0/16 (the cloud metadata service 169.254.169.254), fe80::/10
//   private_network  10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT), fc00::/7,
//                    fec0::/10 (deprecated site-local)
//   unspecified      0.0.0.0/8 (Linux connects 0.0.0.0 to the local host), ::
//   multicast        224.0.0.0/4, ff00::/8
//   reserved         240.0.0.0/4 (255.255.255.255 included), and the IPv4-compatible ::/96
// An IPv6 address that carries an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96,
// 6to4 2002::/16) has the class of the IPv4 address it carries.
enum class AddressClass {
    global,
    loopback,
    link_local,
    private_network,
    unspecified,
    multicast,
    reserved
};

// address_class_name gives the words used in refusals: "loopback", "link-local", "private", ...
const char* address_class_name(AddressClass);

// classify_ipv4 and classify_ipv6 take addresses in network byte order.
AddressClass classify_ipv4(const std::array<std::uint8_t, 4>& address);
AddressClass classify_ipv6(const std::array<std::uint8_t, 16>& address);

// classify_ip_literal classifies a host that is an IP address: IPv6 with or without brackets, or
// IPv4 in any form curl and the resolver accept as an address ("127.0.0.1", and also "2130706433",
// "127.1", "0x7f.0.0.1"); nullopt for a host name.
std::optional<AddressClass> classify_ip_literal(std::string_view host);

// HostAllowList holds the comma-separated host allow-list. Entries (case-insensitive, blanks
// around commas ignored, a trailing dot ignored):
//   "kaspi.kz"       exactly that host name (not its subdomains)
//   "*.kaspi.kz"     any subdomain of kaspi.kz (a.kaspi.kz, a.b.kaspi.kz), but not kaspi.kz itself
//   "127.0.0.1"      an IPv4 literal, compared as text
//   "[::1]" or "::1" an IPv6 literal (brackets optional)
//   "host:8080"      an entry with a port ("[::1]:8080" for IPv6) matches only that port when the
//                    caller passes one (allows(host, port)); allows(host) ignores entry ports.
// There is no catch-all "*": an empty list allows nothing. Malformed entries are ignored and
// reported by invalid_entries().
class HostAllowList {
  public:
    explicit HostAllowList(std::string_view comma_separated = "");
    // allows reports whether `host` (as in UrlParts::host, or with IPv6 brackets) is listed.
    bool allows(std::string_view host) const;
    // allows(host, port) also honours entries that name a port.
    bool allows(std::string_view host, int port) const;
    bool empty() const { return entries_.empty(); }
    const std::vector<std::string>& invalid_entries() const { return invalid_; }

  private:
    struct Entry {
        std::string host;  // normalised; without the "*." for suffix entries
        bool subdomains_only = false;
        int port = 0;  // 0 = any port
    };
    bool matches(const Entry& e, const std::string& host, int port) const;
    std::vector<Entry> entries_;
    std::vector<std::string> invalid_;
};

}  // namespace demper::core
