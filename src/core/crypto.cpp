// crypto: see crypto.hpp for the format, the key file and the error rules.
#include "core/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

namespace demper::core {

namespace {

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX* ctx) const noexcept { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// FileDescriptor closes on scope exit.
class FileDescriptor {
  public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    ~FileDescriptor() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

  private:
    int fd_;
};

// WipedBuffer is a fixed buffer that is cleansed on scope exit (it holds key material).
template <std::size_t N>
struct WipedBuffer {
    std::array<unsigned char, N> data{};
    ~WipedBuffer() { OPENSSL_cleanse(data.data(), data.size()); }
};

// The EVP update functions take an int length: feed longer inputs in chunks.
constexpr std::size_t kChunk = std::size_t{1} << 30;

const unsigned char* bytes_of(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

[[noreturn]] void openssl_failure(const char* what) {
    ERR_clear_error();
    throw std::runtime_error(std::string("encryption failed: ") + what);
}

int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string quoted(const std::string& path) { return "\"" + path + "\""; }

}  // namespace

SecretKey::SecretKey(SecretKey&& other) noexcept : bytes_(other.bytes_) {
    OPENSSL_cleanse(other.bytes_.data(), other.bytes_.size());
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
    if (this != &other) {
        bytes_ = other.bytes_;
        OPENSSL_cleanse(other.bytes_.data(), other.bytes_.size());
    }
    return *this;
}

SecretKey::~SecretKey() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

SecretKey SecretKey::from_bytes(std::string_view raw32) {
    if (raw32.size() != kKeyBytes)
        throw std::invalid_argument("an encryption key must be exactly 32 bytes (got " +
                                    std::to_string(raw32.size()) + ")");
    SecretKey key;
    std::memcpy(key.bytes_.data(), raw32.data(), kKeyBytes);
    return key;
}

SecretKey SecretKey::generate() {
    SecretKey key;
    if (RAND_bytes(key.bytes_.data(), static_cast<int>(key.bytes_.size())) != 1)
        openssl_failure("no random bytes for a new key");
    return key;
}

// open_private_file opens a file that holds secrets: a regular file, not accessible by group or
// others. `what` names it in messages ("key file").
static FileDescriptor open_private_file(const std::string& path, const char* what) {
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (fd.get() < 0) {
        const int err = errno;
        throw std::runtime_error(std::string("could not open ") + what + " " + quoted(path) + ": " +
                                 std::strerror(err));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        const int err = errno;
        throw std::runtime_error(std::string("could not stat ") + what + " " + quoted(path) + ": " +
                                 std::strerror(err));
    }
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error(std::string(what) + " " + quoted(path) + " is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw std::runtime_error(std::string(what) + " " + quoted(path) +
                                 " is accessible by group or others (mode " + mode +
                                 "); it must be readable by its owner only (chmod 600)");
    }
    return fd;
}

SecretKey SecretKey::from_file(const std::string& path) {
    if (path.empty()) throw std::runtime_error("no encryption key file is configured");
    const FileDescriptor fd = open_private_file(path, "key file");

    // The longest valid content is 66 bytes (64 hex digits + "\r\n"); read one more to see excess.
    WipedBuffer<80> buf;
    std::size_t len = 0;
    while (len < buf.data.size()) {
        const ssize_t n = ::read(fd.get(), buf.data.data() + len, buf.data.size() - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            throw std::runtime_error("could not read key file " + quoted(path) + ": " +
                                     std::strerror(err));
        }
        if (n == 0) break;
        len += static_cast<std::size_t>(n);
    }

    const std::string wrong_size = "key file " + quoted(path) +
                                   " must hold 32 raw bytes or 64 hex digits (optionally followed "
                                   "by a newline)";
    if (len == kKeyBytes) {
        SecretKey key;
        std::memcpy(key.bytes_.data(), buf.data.data(), kKeyBytes);
        return key;
    }
    std::size_t hex_len = len;
    if (hex_len > 0 && buf.data[hex_len - 1] == '\n') {
        --hex_len;
        if (hex_len > 0 && buf.data[hex_len - 1] == '\r') --hex_len;
    }
    if (hex_len != 2 * kKeyBytes)
        throw std::runtime_error(wrong_size + "; it holds " +
                                 (len >= buf.data.size() ? std::string("more than 66")
                                                         : std::to_string(len)) +
                                 " bytes");
    SecretKey key;
    for (std::size_t i = 0; i < kKeyBytes; ++i) {
        const int hi = hex_value(buf.data[2 * i]);
        const int lo = hex_value(buf.data[2 * i + 1]);
        if (hi < 0 || lo < 0)
            throw std::runtime_error(wrong_size + "; its 64 characters are not all hex digits");
        key.bytes_[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return key;
}

std::string SecretKey::fingerprint() const {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(bytes_.data(), bytes_.size(), digest, &digest_len, EVP_sha256(), nullptr) != 1 ||
        digest_len < 4)
        openssl_failure("SHA-256 unavailable");
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 4; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0x0f];
    }
    OPENSSL_cleanse(digest, sizeof digest);
    return out;
}

std::string seal(const SecretKey& key, std::string_view plaintext,
                 std::string_view associated_data) {
    std::string out(kSealOverhead + plaintext.size(), '\0');
    auto* const base = reinterpret_cast<unsigned char*>(out.data());
    unsigned char* const nonce = base + 1;
    unsigned char* const body = nonce + kSealNonceBytes;
    unsigned char* const tag = body + plaintext.size();
    base[0] = kSealVersion;
    if (RAND_bytes(nonce, static_cast<int>(kSealNonceBytes)) != 1)
        openssl_failure("no random bytes for the nonce");

    const CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) openssl_failure("out of memory");
    if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kSealNonceBytes),
                            nullptr) != 1 ||
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes_.data(), nonce) != 1)
        openssl_failure("cipher setup");

    int n = 0;
    for (std::size_t off = 0; off < associated_data.size(); off += kChunk) {
        const std::size_t len = std::min(kChunk, associated_data.size() - off);
        if (EVP_EncryptUpdate(ctx.get(), nullptr, &n, bytes_of(associated_data) + off,
                              static_cast<int>(len)) != 1)
            openssl_failure("associated data");
    }
    std::size_t written = 0;
    for (std::size_t off = 0; off < plaintext.size(); off += kChunk) {
        const std::size_t len = std::min(kChunk, plaintext.size() - off);
        if (EVP_EncryptUpdate(ctx.get(), body + written, &n, bytes_of(plaintext) + off,
                              static_cast<int>(len)) != 1)
            openssl_failure("encrypt");
        written += static_cast<std::size_t>(n);
    }
    if (EVP_EncryptFinal_ex(ctx.get(), body + written, &n) != 1) openssl_failure("finish");
    written += static_cast<std::size_t>(n);
    if (written != plaintext.size()) openssl_failure("unexpected ciphertext length");
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kSealTagBytes), tag) !=
        1)
        openssl_failure("tag");
    return out;
}

std::optional<std::string> open(const SecretKey& key, std::string_view sealed,
                                std::string_view associated_data) {
    if (sealed.size() < kSealOverhead) return std::nullopt;
    const unsigned char* const base = bytes_of(sealed);
    if (base[0] != kSealVersion) return std::nullopt;
    const unsigned char* const nonce = base + 1;
    const unsigned char* const body = nonce + kSealNonceBytes;
    const std::size_t body_len = sealed.size() - kSealOverhead;
    unsigned char tag[kSealTagBytes];
    std::memcpy(tag, body + body_len, kSealTagBytes);  // SET_TAG wants a non-const pointer

    auto fail = [](std::string* partial) -> std::optional<std::string> {
        if (partial != nullptr && !partial->empty())
            OPENSSL_cleanse(partial->data(), partial->size());
        ERR_clear_error();
        return std::nullopt;
    };

    try {
        const CipherCtx ctx(EVP_CIPHER_CTX_new());
        if (!ctx) return fail(nullptr);
        if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN,
                                static_cast<int>(kSealNonceBytes), nullptr) != 1 ||
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes_.data(), nonce) != 1)
            return fail(nullptr);

        int n = 0;
        for (std::size_t off = 0; off < associated_data.size(); off += kChunk) {
            const std::size_t len = std::min(kChunk, associated_data.size() - off);
            if (EVP_DecryptUpdate(ctx.get(), nullptr, &n, bytes_of(associated_data) + off,
                                  static_cast<int>(len)) != 1)
                return fail(nullptr);
        }
        std::string plain(body_len, '\0');
        auto* const out = reinterpret_cast<unsigned char*>(plain.data());
        std::size_t written = 0;
        for (std::size_t off = 0; off < body_len; off += kChunk) {
            const std::size_t len = std::min(kChunk, body_len - off);
            if (EVP_DecryptUpdate(ctx.get(), out + written, &n, body + off,
                                  static_cast<int>(len)) != 1)
                return fail(&plain);
            written += static_cast<std::size_t>(n);
        }
        if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kSealTagBytes),
                                tag) != 1)
            return fail(&plain);
        // The tag is checked here: a wrong key, wrong associated data or any changed byte fails.
        if (EVP_DecryptFinal_ex(ctx.get(), out + written, &n) != 1) return fail(&plain);
        written += static_cast<std::size_t>(n);
        if (written != body_len) return fail(&plain);
        return plain;
    } catch (const std::bad_alloc&) {
        return fail(nullptr);
    }
}

std::optional<std::string> reseal(const SecretKey& old_key, const SecretKey& new_key,
                                  std::string_view sealed, std::string_view associated_data) {
    std::optional<std::string> plain = open(old_key, sealed, associated_data);
    if (!plain) return std::nullopt;
    struct Wipe {
        std::string* s;
        ~Wipe() {
            if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
        }
    } wipe{&*plain};
    return seal(new_key, *plain, associated_data);
}

std::vector<std::string> read_secret_lines(const std::string& path, std::size_t max_bytes) {
    const FileDescriptor fd = open_private_file(path, "secrets file");
    std::string content;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            OPENSSL_cleanse(buf, sizeof buf);
            OPENSSL_cleanse(content.data(), content.size());
            throw std::runtime_error("could not read secrets file " + quoted(path) + ": " + std::strerror(err));
        }
        if (n == 0) break;
        content.append(buf, static_cast<std::size_t>(n));
        if (content.size() > max_bytes) {
            OPENSSL_cleanse(buf, sizeof buf);
            OPENSSL_cleanse(content.data(), content.size());
            throw std::runtime_error("secrets file " + quoted(path) + " is larger than " +
                                     std::to_string(max_bytes) + " bytes");
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start <= content.size()) {
        std::size_t end = content.find('\n', start);
        if (end == std::string::npos) end = content.size();
        std::size_t a = start, b = end;
        while (a < b && (content[a] == ' ' || content[a] == '\t')) a++;
        while (b > a && (content[b - 1] == ' ' || content[b - 1] == '\t' || content[b - 1] == '\r')) b--;
        if (b > a && content[a] != '#') lines.emplace_back(content, a, b - a);
        start = end + 1;
    }
    OPENSSL_cleanse(content.data(), content.size());
    return lines;
}

}  // namespace demper::core
