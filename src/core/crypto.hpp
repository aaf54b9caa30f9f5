// crypto: marketplace credentials (session cookies, tokens) encrypted at rest.
//
// Algorithm: AES-256-GCM through OpenSSL's EVP interface, a fresh random 12-byte nonce per seal
// (RAND_bytes), a 16-byte tag. The sealed format is
//
//     0x01 (format version) || nonce (12 bytes) || ciphertext (as long as the plaintext) || tag (16)
//
// so a sealed value is always exactly 29 bytes longer than its plaintext. The caller passes
// "associated data" that binds the blob to where it is stored (the extension uses "store:<id>"):
// a blob copied into another store's row does not open there.
//
// Key: 32 bytes read from a file named by a superuser-only setting. The key file holds either the 32
// raw bytes or 64 hexadecimal digits (either case) followed by an optional "\n" or "\r\n"; it must be
// a regular file not accessible by group or others (mode & 077 == 0). The key never appears in any
// message; fingerprint() (8 hex digits of SHA-256 of the key) is safe to show and tells a DBA which
// key sealed what.
//
// Key rotation (the documented procedure calls reseal() on every stored credential): load the old
// and the new key, reseal every blob from old to new with the same associated data, then point the
// setting at the new key file. reseal() returns nullopt for a blob the old key does not open, so
// a rotation interrupted half-way can be resumed: try the new key first, reseal the rest.
//
// Errors: SecretKey::from_file and seal throw std::runtime_error (never with key material or
// plaintext in the message); open and reseal never throw on bad input (they return nullopt). Every
// failure path clears OpenSSL's per-thread error queue, so nothing stale is left for other OpenSSL
// users in the same process (PostgreSQL's own TLS code).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demper::core {

constexpr std::size_t kKeyBytes = 32;
constexpr unsigned char kSealVersion = 0x01;
constexpr std::size_t kSealNonceBytes = 12;
constexpr std::size_t kSealTagBytes = 16;
constexpr std::size_t kSealOverhead = 1 + kSealNonceBytes + kSealTagBytes;  // 29

class SecretKey;
std::string seal(const SecretKey& key, std::string_view plaintext, std::string_view associated_data);
std::optional<std::string> open(const SecretKey& key, std::string_view sealed,
                                std::string_view associated_data);

// SecretKey holds a 32-byte AES-256 key. It is never printed, cannot be copied (one copy of the
// secret in memory), can be moved (the source is wiped), and wipes itself with OPENSSL_cleanse.
class SecretKey {
  public:
    // from_file reads the key file described above. Throws std::runtime_error when the path is
    // empty, the file cannot be opened or is not a regular file, is accessible by group/others
    // (the message says so and gives the mode), or does not hold 32 raw bytes / 64 hex digits.
    static SecretKey from_file(const std::string& path);
    // from_bytes takes exactly 32 raw bytes; throws std::invalid_argument otherwise.
    static SecretKey from_bytes(std::string_view raw32);
    // generate makes a new random key (RAND_bytes); throws std::runtime_error if OpenSSL fails.
    static SecretKey generate();

    SecretKey(SecretKey&& other) noexcept;
    SecretKey& operator=(SecretKey&& other) noexcept;
    SecretKey(const SecretKey&) = delete;
    SecretKey& operator=(const SecretKey&) = delete;
    ~SecretKey();

    // fingerprint: the first 8 lower-case hex digits of SHA-256(key). Stable for a key; safe to
    // log and to store next to the data it sealed.
    std::string fingerprint() const;

  private:
    SecretKey() = default;
    std::array<unsigned char, kKeyBytes> bytes_{};

    friend std::string seal(const SecretKey&, std::string_view, std::string_view);
    friend std::optional<std::string> open(const SecretKey&, std::string_view, std::string_view);
};

// seal encrypts `plaintext` (any bytes, may be empty) and authenticates it together with
// `associated_data`. Output format: see the top of this file. Throws std::runtime_error only if
// OpenSSL itself fails (no randomness, out of memory).
std::string seal(const SecretKey& key, std::string_view plaintext, std::string_view associated_data);

// open returns the plaintext, or nullopt when the blob is shorter than 29 bytes, has another
// version byte, was sealed with another key or other associated data, or was changed in any byte.
// Never throws on bad input.
std::optional<std::string> open(const SecretKey& key, std::string_view sealed,
                                std::string_view associated_data);

// reseal opens `sealed` with `old_key` and seals the plaintext again with `new_key` (fresh nonce,
// same associated data); nullopt when old_key does not open it. The intermediate plaintext is
// wiped. This is the key-rotation primitive.
std::optional<std::string> reseal(const SecretKey& old_key, const SecretKey& new_key,
                                  std::string_view sealed, std::string_view associated_data);

// read_secret_lines reads a small file of secrets, one per line (the proxy URLs with their
// credentials of demper.proxies_file): the file must be a regular file readable by its owner only,
// as the key file; blank lines and lines starting with '#' are skipped, surrounding spaces and a
// trailing "\r" trimmed. Throws std::runtime_error (naming the file, never its contents) when the
// file cannot be read, is accessible by group or others, or is larger than max_bytes.
std::vector<std::string> read_secret_lines(const std::string& path, std::size_t max_bytes = 1 << 20);

}  // namespace demper::core
