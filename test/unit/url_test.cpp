// Unit tests for core/url: parsing, templates, the host allow-list, redirects and address classes
// (SSRF cases).
#include "core/url.hpp"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace demper::core {
namespace {

TEST(UrlParse, SplitsHttpsWithDefaultPort) {
    auto u = parse_url("https://kaspi.kz/yml/offer-view/offers/101?x=1#frag");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->scheme, "https");
    EXPECT_EQ(u->host, "kaspi.kz");
    EXPECT_EQ(u->port, 443);
    EXPECT_EQ(u->path_and_query, "/yml/offer-view/offers/101?x=1");
}

TEST(UrlParse, HttpDefaultPortAndExplicitPort) {
    EXPECT_EQ(parse_url("http://a.b")->port, 80);
    EXPECT_EQ(parse_url("http://a.b")->path_and_query, "/");
    EXPECT_EQ(parse_url("http://a.b:8080/x")->port, 8080);
    EXPECT_EQ(parse_url("http://a.b?q=1")->path_and_query, "/?q=1");
}

TEST(UrlParse, LowerCasesSchemeAndHostAndDropsTrailingDot) {
    auto u = parse_url("HTTPS://KASPI.KZ./Path");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->scheme, "https");
    EXPECT_EQ(u->host, "kaspi.kz");
    EXPECT_EQ(u->path_and_query, "/Path");  // the path keeps its case
}

TEST(UrlParse, Ipv6Literals) {
    auto u = parse_url("http://[::1]:8080/x");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->port, 8080);
    auto v = parse_url("https://[2001:DB8::1]/");
    ASSERT_TRUE(v);
    EXPECT_EQ(v->host, "2001:db8::1");
    EXPECT_EQ(v->port, 443);
    EXPECT_FALSE(parse_url("http://[::1/"));
    EXPECT_FALSE(parse_url("http://[fe80::1%25eth0]/"));
    EXPECT_FALSE(parse_url("http://::1/"));
}

TEST(UrlParse, RejectsUserinfoAndOtherTricks) {
    EXPECT_FALSE(parse_url("http://kaspi.kz@evil.com/"));
    EXPECT_FALSE(parse_url("http://user:pw@kaspi.kz/"));
    EXPECT_FALSE(parse_url("http://kaspi.kz\\@evil.com/"));
    EXPECT_FALSE(parse_url("http://evil.com\\.kaspi.kz/"));
    EXPECT_FALSE(parse_url("http://kaspi.kz /"));
    EXPECT_FALSE(parse_url("http://kaspi.kz/\r\nHost: x"));
    EXPECT_FALSE(parse_url("http://ka%73pi.kz/"));
    EXPECT_FALSE(parse_url("http://kaspi..kz/"));
    EXPECT_FALSE(parse_url("http://k\xc3\xa4spi.kz/"));
}

TEST(UrlParse, RejectsOtherSchemesAndMissingParts) {
    EXPECT_FALSE(parse_url("ftp://kaspi.kz/"));
    EXPECT_FALSE(parse_url("file:///etc/passwd"));
    EXPECT_FALSE(parse_url("gopher://127.0.0.1:6379/"));
    EXPECT_FALSE(parse_url("//kaspi.kz/"));
    EXPECT_FALSE(parse_url("kaspi.kz/x"));
    EXPECT_FALSE(parse_url("http:///x"));
    EXPECT_FALSE(parse_url("http://:80/"));
    EXPECT_FALSE(parse_url(""));
}

TEST(UrlParse, RejectsBadPorts) {
    EXPECT_FALSE(parse_url("http://a.b:0/"));
    EXPECT_FALSE(parse_url("http://a.b:65536/"));
    EXPECT_FALSE(parse_url("http://a.b:-1/"));
    EXPECT_FALSE(parse_url("http://a.b:80x/"));
    EXPECT_FALSE(parse_url("http://a.b:/"));
    EXPECT_FALSE(parse_url("http://a.b:1:2/"));
    EXPECT_TRUE(parse_url("http://a.b:65535/"));
}

TEST(UrlTemplate, ExpandsEveryPlaceholderAndEncodes) {
    EXPECT_EQ(expand_url_template("https://kaspi.kz/o/{product_code}", "101234567"),
              "https://kaspi.kz/o/101234567");
    EXPECT_EQ(expand_url_template("http://h/{product_code}/x?c={product_code}", "a b/c?&#"),
              "http://h/a%20b%2Fc%3F%26%23/x?c=a%20b%2Fc%3F%26%23");
    EXPECT_EQ(expand_url_template("http://h/{product_code}", "A-z_0.9~"), "http://h/A-z_0.9~");
    EXPECT_EQ(expand_url_template("http://h/x", "1"), "http://h/x");
    EXPECT_EQ(expand_url_template("http://h/{product_code}", "\xd0\x96"), "http://h/%D0%96");
}

TEST(UrlTemplate, EncodedCodeCannotChangeTheHost) {
    const std::string url = expand_url_template("http://{product_code}.kaspi.kz/", "evil.com/#");
    auto u = parse_url(url);
    EXPECT_FALSE(u);  // "%2F" in a host is refused, so the code cannot smuggle a path
    const std::string url2 = expand_url_template("http://kaspi.kz/{product_code}", "@evil.com");
    auto u2 = parse_url(url2);
    ASSERT_TRUE(u2);
    EXPECT_EQ(u2->host, "kaspi.kz");
}

TEST(UrlTemplate, Validation) {
    std::string why;
    EXPECT_TRUE(template_is_valid("https://kaspi.kz/yml/offer-view/offers/{product_code}", &why));
    EXPECT_TRUE(template_is_valid("http://127.0.0.1:8080/offers/{product_code}", nullptr));
    EXPECT_FALSE(template_is_valid("", &why));
    EXPECT_FALSE(why.empty());
    EXPECT_FALSE(template_is_valid("ftp://kaspi.kz/{product_code}", &why));
    EXPECT_NE(why.find("http"), std::string::npos);
    EXPECT_FALSE(template_is_valid("https:///offers/{product_code}", &why));
    EXPECT_FALSE(template_is_valid("https://kaspi.kz/{productId}", &why));
    EXPECT_FALSE(template_is_valid("kaspi.kz/{product_code}", &why));
    EXPECT_FALSE(template_is_valid("https://kaspi.kz@evil.com/{product_code}", &why));
}

TEST(UrlAllowList, EmptyAllowsNothing) {
    HostAllowList empty;
    EXPECT_TRUE(empty.empty());
    EXPECT_FALSE(empty.allows("kaspi.kz"));
    EXPECT_FALSE(empty.allows("127.0.0.1"));
    HostAllowList blanks(" , ,");
    EXPECT_TRUE(blanks.empty());
}

TEST(UrlAllowList, ExactHostsAreCaseInsensitiveAndIgnoreTrailingDot) {
    HostAllowList a("kaspi.kz, MC.Shop.Kaspi.KZ.");
    EXPECT_TRUE(a.allows("kaspi.kz"));
    EXPECT_TRUE(a.allows("KASPI.KZ"));
    EXPECT_TRUE(a.allows("kaspi.kz."));
    EXPECT_TRUE(a.allows("mc.shop.kaspi.kz"));
    EXPECT_FALSE(a.allows("www.kaspi.kz"));  // exact entries do not cover subdomains
    EXPECT_FALSE(a.allows("evilkaspi.kz"));
    EXPECT_FALSE(a.allows("kaspi.kz.evil.com"));
    EXPECT_FALSE(a.allows(""));
}

TEST(UrlAllowList, WildcardMatchesSubdomainsOnly) {
    HostAllowList a("*.kaspi.kz");
    EXPECT_TRUE(a.allows("mc.shop.kaspi.kz"));
    EXPECT_TRUE(a.allows("WWW.kaspi.kz"));
    EXPECT_FALSE(a.allows("kaspi.kz"));
    EXPECT_FALSE(a.allows("evilkaspi.kz"));
    EXPECT_FALSE(a.allows("kaspi.kz.evil.com"));
    EXPECT_FALSE(a.allows(".kaspi.kz"));
}

TEST(UrlAllowList, SsrfTargetsAreNotAllowedUnlessListed) {
    HostAllowList a("kaspi.kz,*.kaspi.kz");
    for (const char* url : {"http://127.0.0.1/", "http://169.254.169.254/latest/meta-data/",
                            "http://[::1]/", "http://localhost/", "http://2130706433/",
                            "http://0x7f.1/", "http://10.0.0.1/", "http://kaspi.kz.evil.com/"}) {
        auto u = parse_url(url);
        EXPECT_TRUE(!u || !a.allows(u->host, u->port)) << url;
    }
    EXPECT_FALSE(parse_url("http://kaspi.kz@evil.com/"));  // never reaches the list
}

TEST(UrlAllowList, IpLiteralsAndPorts) {
    HostAllowList a("127.0.0.1:8080, [::1], 10.1.2.3");
    EXPECT_TRUE(a.invalid_entries().empty());
    EXPECT_TRUE(a.allows("127.0.0.1", 8080));
    EXPECT_FALSE(a.allows("127.0.0.1", 8081));
    EXPECT_TRUE(a.allows("127.0.0.1"));  // allows(host) ignores entry ports
    EXPECT_TRUE(a.allows("::1", 443));
    EXPECT_TRUE(a.allows("[::1]", 80));
    EXPECT_TRUE(a.allows("10.1.2.3", 1234));
    EXPECT_FALSE(a.allows("10.1.2.30"));
    HostAllowList b("[::1]:9000");
    EXPECT_TRUE(b.allows("::1", 9000));
    EXPECT_FALSE(b.allows("::1", 9001));
}

TEST(UrlAllowList, MalformedEntriesAreReportedAndIgnored) {
    HostAllowList a("kaspi.kz, bad host, x:99999, *., ok.kz:");
    EXPECT_TRUE(a.allows("kaspi.kz"));
    EXPECT_EQ(a.invalid_entries().size(), 4u);
    EXPECT_FALSE(a.allows("bad host"));
}

TEST(UrlRedirect, OriginIsSchemeHostAndPort) {
    const UrlParts from = *parse_url("https://mc.shop.kaspi.kz/pricefeed/upload");
    auto kind = [&from](const char* to) { return classify_redirect(from, *parse_url(to)); };
    EXPECT_EQ(kind("https://mc.shop.kaspi.kz/other?x=1"), RedirectKind::same_origin);
    EXPECT_EQ(kind("https://MC.shop.kaspi.kz:443/"), RedirectKind::same_origin);
    EXPECT_EQ(kind("https://kaspi.kz/login"), RedirectKind::cross_origin);
    EXPECT_EQ(kind("https://mc.shop.kaspi.kz:8443/"), RedirectKind::cross_origin);
    EXPECT_EQ(kind("http://mc.shop.kaspi.kz/"), RedirectKind::downgrade);
    EXPECT_EQ(kind("http://evil.example/"), RedirectKind::downgrade);
    const UrlParts plain = *parse_url("http://127.0.0.1:8080/a");
    EXPECT_EQ(classify_redirect(plain, *parse_url("https://127.0.0.1:8080/a")),
              RedirectKind::cross_origin);  // an upgrade changes the origin too
    EXPECT_EQ(classify_redirect(plain, *parse_url("http://127.0.0.1:8081/a")),
              RedirectKind::cross_origin);
    EXPECT_TRUE(same_origin(plain, *parse_url("http://127.0.0.1:8080/b?c")));
}

TEST(UrlAddressClass, IpLiterals) {
    const std::vector<std::pair<const char*, AddressClass>> cases = {
        {"8.8.8.8", AddressClass::global},
        {"172.32.0.1", AddressClass::global},
        {"100.128.0.1", AddressClass::global},
        {"169.253.255.255", AddressClass::global},
        {"127.0.0.1", AddressClass::loopback},
        {"127.255.255.254", AddressClass::loopback},
        {"127.1", AddressClass::loopback},           // shorthand the resolver accepts
        {"2130706433", AddressClass::loopback},      // 127.0.0.1 as one number
        {"0x7f.0.0.1", AddressClass::loopback},
        {"169.254.169.254", AddressClass::link_local},
        {"10.0.0.1", AddressClass::private_network},
        {"172.16.0.1", AddressClass::private_network},
        {"172.31.255.255", AddressClass::private_network},
        {"192.168.1.1", AddressClass::private_network},
        {"100.64.0.1", AddressClass::private_network},
        {"100.127.255.255", AddressClass::private_network},
        {"0.0.0.0", AddressClass::unspecified},
        {"0.1.2.3", AddressClass::unspecified},
        {"224.0.0.1", AddressClass::multicast},
        {"239.255.255.250", AddressClass::multicast},
        {"240.0.0.1", AddressClass::reserved},
        {"255.255.255.255", AddressClass::reserved},
        {"2001:4860:4860::8888", AddressClass::global},
        {"::1", AddressClass::loopback},
        {"[::1]", AddressClass::loopback},
        {"::", AddressClass::unspecified},
        {"fe80::1", AddressClass::link_local},
        {"febf::1", AddressClass::link_local},
        {"fec0::1", AddressClass::private_network},
        {"fc00::1", AddressClass::private_network},
        {"fdff:ffff::1", AddressClass::private_network},
        {"ff02::1", AddressClass::multicast},
        {"::ffff:127.0.0.1", AddressClass::loopback},
        {"::ffff:7f00:1", AddressClass::loopback},
        {"::ffff:169.254.169.254", AddressClass::link_local},
        {"::ffff:10.0.0.1", AddressClass::private_network},
        {"::ffff:8.8.8.8", AddressClass::global},
        {"::127.0.0.1", AddressClass::reserved},  // IPv4-compatible, deprecated
        {"64:ff9b::a9fe:a9fe", AddressClass::link_local},  // NAT64 of 169.254.169.254
        {"64:ff9b::808:808", AddressClass::global},
        {"2002:a00:1::", AddressClass::private_network},  // 6to4 of 10.0.0.1
    };
    for (const auto& [text, expected] : cases) {
        const auto c = classify_ip_literal(text);
        ASSERT_TRUE(c.has_value()) << text;
        EXPECT_EQ(*c, expected) << text << " classified as " << address_class_name(*c);
    }
}

TEST(UrlAddressClass, NamesAreNotLiterals) {
    for (const char* name : {"kaspi.kz", "localhost", "mc.shop.kaspi.kz", "", "1.2.3.4 x",
                             "1.2.3.4.5", "[::1", "::1]", "256.0.0.1", "::g"}) {
        EXPECT_FALSE(classify_ip_literal(name).has_value()) << name;
    }
}

TEST(UrlAddressClass, Names) {
    EXPECT_STREQ(address_class_name(AddressClass::global), "global");
    EXPECT_STREQ(address_class_name(AddressClass::loopback), "loopback");
    EXPECT_STREQ(address_class_name(AddressClass::link_local), "link-local");
    EXPECT_STREQ(address_class_name(AddressClass::private_network), "private");
    EXPECT_STREQ(address_class_name(AddressClass::unspecified), "unspecified");
    EXPECT_STREQ(address_class_name(AddressClass::multicast), "multicast");
    EXPECT_STREQ(address_class_name(AddressClass::reserved), "reserved");
}

}  // namespace
}  // namespace demper::core
