// Unit tests of credential encryption (src/core/crypto.hpp).
#include "core/crypto.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {

using demper::core::kSealNonceBytes;
using demper::core::kSealOverhead;
using demper::core::kSealTagBytes;
using demper::core::open;
using demper::core::reseal;
using demper::core::seal;
using demper::core::SecretKey;

std::string key_bytes(char fill) {
    std::string k(32, fill);
    k[0] = 'K';
    k[31] = '\x01';
    return k;
}

const SecretKey& key_a() {
    static const SecretKey k = SecretKey::from_bytes(key_bytes('a'));
    return k;
}
const SecretKey& key_b() {
    static const SecretKey k = SecretKey::from_bytes(key_bytes('b'));
    return k;
}

const char* const kAd = "store:42";

// TempFile: a file made with mkstemp, holding `content`, chmod'ed to `mode`; removed at the end.
class TempFile {
  public:
    TempFile(const std::string& content, mode_t mode) {
        char name[] = "/tmp/demper_key_XXXXXX";
        const int fd = ::mkstemp(name);
        if (fd < 0) throw std::runtime_error("mkstemp failed");
        path_ = name;
        std::size_t done = 0;
        while (done < content.size()) {
            const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
        ::chmod(path_.c_str(), mode);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() { ::unlink(path_.c_str()); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

std::string hex_of(const std::string& raw) {
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (const char c : raw) {
        const auto u = static_cast<unsigned char>(c);
        out += kHex[u >> 4];
        out += kHex[u & 15];
    }
    return out;
}

std::string from_file_error(const std::string& content, mode_t mode) {
    TempFile f(content, mode);
    try {
        (void)SecretKey::from_file(f.path());
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

void round_trip(const std::string& plain) {
    const std::string sealed = seal(key_a(), plain, kAd);
    EXPECT_EQ(sealed.size(), plain.size() + kSealOverhead);
    EXPECT_EQ(static_cast<unsigned char>(sealed[0]), 0x01);
    const auto opened = open(key_a(), sealed, kAd);
    ASSERT_TRUE(opened.has_value());
    EXPECT_EQ(*opened, plain);
}

TEST(CryptoSeal, RoundTripEmpty) { round_trip(""); }
TEST(CryptoSeal, RoundTripOneByte) { round_trip("x"); }
TEST(CryptoSeal, RoundTripCookie) { round_trip("mc-session=abc123; mc-sid=def456"); }

TEST(CryptoSeal, RoundTripBinary) {
    std::string plain;
    for (int i = 0; i < 256; ++i) plain += static_cast<char>(i);
    plain += std::string(3, '\0');
    round_trip(plain);
}

TEST(CryptoSeal, RoundTripOneMegabyte) {
    std::string plain(1 << 20, '\0');
    for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>((i * 131 + 7) & 0xFF);
    round_trip(plain);
}

TEST(CryptoSeal, EmptyAssociatedData) {
    const std::string sealed = seal(key_a(), "secret", "");
    ASSERT_TRUE(open(key_a(), sealed, "").has_value());
    EXPECT_FALSE(open(key_a(), sealed, kAd).has_value());
}

TEST(CryptoSeal, PlaintextIsNotVisible) {
    const std::string plain = "very-secret-session-cookie-value";
    const std::string sealed = seal(key_a(), plain, kAd);
    EXPECT_EQ(sealed.find(plain), std::string::npos);
    EXPECT_EQ(sealed.find("secret"), std::string::npos);
}

TEST(CryptoSeal, NoncesDiffer) {
    const std::string s1 = seal(key_a(), "same", kAd);
    const std::string s2 = seal(key_a(), "same", kAd);
    EXPECT_NE(s1.substr(1, kSealNonceBytes), s2.substr(1, kSealNonceBytes));
    EXPECT_NE(s1, s2);
    EXPECT_EQ(*open(key_a(), s1, kAd), "same");
    EXPECT_EQ(*open(key_a(), s2, kAd), "same");
}

TEST(CryptoTamper, EveryRegionDetected) {
    const std::string plain = "0123456789abcdef-cookie";
    const std::string sealed = seal(key_a(), plain, kAd);
    const std::size_t body = 1 + kSealNonceBytes;
    const std::size_t tag = sealed.size() - kSealTagBytes;
    struct Region {
        const char* name;
        std::size_t from, to;
    };
    const Region regions[] = {{"version", 0, 1},
                              {"nonce", 1, body},
                              {"ciphertext", body, tag},
                              {"tag", tag, sealed.size()}};
    for (const Region& r : regions) {
        for (std::size_t i = r.from; i < r.to; ++i) {
            for (const unsigned char bit : {0x01, 0x80}) {
                std::string bad = sealed;
                bad[i] = static_cast<char>(bad[i] ^ bit);
                EXPECT_FALSE(open(key_a(), bad, kAd).has_value()) << r.name << " byte " << i;
            }
        }
    }
    EXPECT_TRUE(open(key_a(), sealed, kAd).has_value());
}

TEST(CryptoTamper, WrongVersionRejected) {
    std::string sealed = seal(key_a(), "x", kAd);
    sealed[0] = 0x02;
    EXPECT_FALSE(open(key_a(), sealed, kAd).has_value());
}

TEST(CryptoTamper, Truncation) {
    const std::string sealed = seal(key_a(), "some secret value", kAd);
    for (std::size_t len = 0; len < sealed.size(); ++len)
        EXPECT_FALSE(open(key_a(), sealed.substr(0, len), kAd).has_value()) << len;
    EXPECT_FALSE(open(key_a(), sealed + "x", kAd).has_value());
    EXPECT_FALSE(open(key_a(), "", kAd).has_value());
}

TEST(CryptoTamper, WrongKey) {
    const std::string sealed = seal(key_a(), "secret", kAd);
    EXPECT_FALSE(open(key_b(), sealed, kAd).has_value());
    const std::string sealed_empty = seal(key_a(), "", kAd);
    EXPECT_FALSE(open(key_b(), sealed_empty, kAd).has_value());
}

TEST(CryptoTamper, WrongAssociatedData) {
    const std::string sealed = seal(key_a(), "secret", "store:42");
    EXPECT_FALSE(open(key_a(), sealed, "store:43").has_value());
    EXPECT_FALSE(open(key_a(), sealed, "store:4").has_value());
    EXPECT_FALSE(open(key_a(), sealed, "").has_value());
    EXPECT_TRUE(open(key_a(), sealed, "store:42").has_value());
}

TEST(CryptoTamper, GarbageNeverThrows) {
    std::string junk;
    for (int len = 0; len < 100; ++len) {
        EXPECT_NO_THROW({ EXPECT_FALSE(open(key_a(), junk, kAd).has_value()); });
        junk += static_cast<char>(len == 0 ? 1 : len * 37);
    }
}

TEST(CryptoRotation, ResealMovesToNewKey) {
    const std::string sealed = seal(key_a(), "cookie", kAd);
    const auto moved = reseal(key_a(), key_b(), sealed, kAd);
    ASSERT_TRUE(moved.has_value());
    EXPECT_FALSE(open(key_a(), *moved, kAd).has_value());
    EXPECT_EQ(*open(key_b(), *moved, kAd), "cookie");
    // Already rotated (or foreign) blobs are reported, not re-encrypted.
    EXPECT_FALSE(reseal(key_a(), key_b(), *moved, kAd).has_value());
    EXPECT_FALSE(reseal(key_a(), key_b(), sealed, "store:7").has_value());
}

TEST(CryptoKey, FromBytesLength) {
    EXPECT_THROW((void)SecretKey::from_bytes(std::string(31, 'x')), std::invalid_argument);
    EXPECT_THROW((void)SecretKey::from_bytes(std::string(33, 'x')), std::invalid_argument);
    EXPECT_NO_THROW((void)SecretKey::from_bytes(std::string(32, 'x')));
}

TEST(CryptoKey, GenerateIsRandom) {
    const SecretKey k1 = SecretKey::generate();
    const SecretKey k2 = SecretKey::generate();
    EXPECT_NE(k1.fingerprint(), k2.fingerprint());
    EXPECT_EQ(*open(k1, seal(k1, "x", kAd), kAd), "x");
}

TEST(CryptoKey, MoveKeepsKey) {
    SecretKey k = SecretKey::from_bytes(key_bytes('a'));
    const std::string sealed = seal(k, "x", kAd);
    SecretKey moved = std::move(k);
    EXPECT_EQ(*open(moved, sealed, kAd), "x");
    EXPECT_EQ(moved.fingerprint(), key_a().fingerprint());
}

TEST(CryptoKey, FingerprintStableAndNotTheKey) {
    const std::string raw = key_bytes('a');
    const std::string fp = key_a().fingerprint();
    EXPECT_EQ(fp.size(), 8u);
    EXPECT_EQ(fp.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(fp, SecretKey::from_bytes(raw).fingerprint());
    EXPECT_EQ(fp, key_a().fingerprint());
    EXPECT_NE(fp, key_b().fingerprint());
    EXPECT_EQ(hex_of(raw).find(fp), std::string::npos);
    // SHA-256 of 32 zero bytes starts with 66687aad.
    EXPECT_EQ(SecretKey::from_bytes(std::string(32, '\0')).fingerprint(), "66687aad");
}

TEST(CryptoKeyFile, RawBytes) {
    const std::string raw = key_bytes('a');
    TempFile f(raw, 0600);
    const SecretKey k = SecretKey::from_file(f.path());
    EXPECT_EQ(k.fingerprint(), key_a().fingerprint());
    EXPECT_EQ(*open(k, seal(key_a(), "x", kAd), kAd), "x");
}

TEST(CryptoKeyFile, HexWithAndWithoutNewline) {
    const std::string raw = key_bytes('a');
    const std::string hex = hex_of(raw);
    std::string upper = hex;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const std::string& content : {hex, hex + "\n", hex + "\r\n", upper + "\n"}) {
        TempFile f(content, 0400);
        EXPECT_EQ(SecretKey::from_file(f.path()).fingerprint(), key_a().fingerprint()) << content;
    }
}

TEST(CryptoKeyFile, BadLengthAndContent) {
    const std::string hex = hex_of(key_bytes('a'));
    for (const std::string& content :
         {std::string(), std::string(31, 'k'), std::string(33, 'k'), hex.substr(0, 62) + "\n",
          hex + "0", hex + "\n\n", hex + " ", std::string(200, 'k'),
          hex.substr(0, 63) + "g"}) {
        const std::string err = from_file_error(content, 0600);
        EXPECT_FALSE(err.empty()) << content.size();
        EXPECT_NE(err.find("32 raw bytes or 64 hex digits"), std::string::npos) << err;
        if (content.size() >= 8) {
            EXPECT_EQ(err.find(content.substr(0, 8)), std::string::npos) << "key material in: " << err;
        }
    }
}

TEST(CryptoKeyFile, GroupOrWorldAccessibleRefused) {
    const std::string hex = hex_of(key_bytes('a'));
    for (const mode_t mode : {0644, 0640, 0604, 0660, 0606, 0610, 0601}) {
        const std::string err = from_file_error(hex, mode);
        EXPECT_NE(err.find("group or others"), std::string::npos) << std::oct << mode << ": " << err;
        EXPECT_EQ(err.find(hex.substr(0, 8)), std::string::npos) << err;
    }
}

TEST(CryptoKeyFile, MissingFileAndEmptyPath) {
    EXPECT_THROW((void)SecretKey::from_file(""), std::runtime_error);
    try {
        (void)SecretKey::from_file("/nonexistent/demper.key");
        FAIL() << "expected an error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/demper.key"), std::string::npos);
    }
    EXPECT_THROW((void)SecretKey::from_file("/tmp"), std::runtime_error);  // not a regular file
}

}  // namespace
