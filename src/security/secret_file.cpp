// Secret files: atomic 0600 writes (WriteSecretFile) and race-free create-once loading.
#include "security/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "security/api_key_store.h"

namespace bff {
namespace {

// Secrets are a few hundred bytes; anything far larger is not one of our files.
constexpr size_t kMaxSecretFileBytes = 1 << 20;

std::string ErrnoText(int err) { return std::strerror(err); }

Status EnsureParentDir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return Internal("cannot create directory " + parent.string() + ": " + ec.message());
  return Status::Ok();
}

// Writes `contents` to a fresh 0600 temp file next to `path`, flushed to disk; returns its name.
StatusOr<std::string> WriteTempFile(const std::string& path, const std::string& contents) {
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return Internal("cannot create temp file for " + path + ": " + ErrnoText(errno));
  bool ok = fchmod(fd, S_IRUSR | S_IWUSR) == 0;
  size_t done = 0;
  while (ok && done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  int saved = errno;
  if (ok && fsync(fd) != 0) {
    ok = false;
    saved = errno;
  }
  close(fd);
  if (!ok) {
    unlink(tmp.c_str());
    return Internal("cannot write " + tmp + ": " + ErrnoText(saved));
  }
  return tmp;
}

void SyncParentDir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  int dfd = open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);  // best effort: makes the new name durable, not just the bytes
    close(dfd);
  }
}

// kNotFound when the file does not exist.
StatusOr<std::string> ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound(path + " does not exist");
    return Internal("cannot open " + path + ": " + ErrnoText(err));
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Internal("cannot read " + path + ": " + ErrnoText(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxSecretFileBytes) {
      close(fd);
      return Internal(path + " is too large to be a secret file");
    }
  }
  close(fd);
  return out;
}

}  // namespace

Status WriteSecretFile(const std::string& path, const std::string& contents) {
  if (Status s = EnsureParentDir(path); !s.ok()) return s;
  StatusOr<std::string> tmp = WriteTempFile(path, contents);
  if (!tmp.ok()) return tmp.status();
  if (rename(tmp->c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp->c_str());
    return Internal("cannot rename " + *tmp + " to " + path + ": " + ErrnoText(err));
  }
  SyncParentDir(path);
  return Status::Ok();
}

StatusOr<std::string> LoadOrCreateSecretFile(const std::string& path, const std::function<std::string()>& make) {
  StatusOr<std::string> existing = ReadSmallFile(path);
  if (existing.ok() || existing.status().code() != StatusCode::kNotFound) return existing;

  if (Status s = EnsureParentDir(path); !s.ok()) return s;
  std::string contents = make();
  StatusOr<std::string> tmp = WriteTempFile(path, contents);
  if (!tmp.ok()) return tmp.status();
  // link() fails with EEXIST instead of replacing, unlike rename(): a concurrent creator keeps its file.
  int rc = link(tmp->c_str(), path.c_str());
  int err = errno;
  unlink(tmp->c_str());
  if (rc == 0) {
    SyncParentDir(path);
    return contents;
  }
  if (err == EEXIST) return ReadSmallFile(path);
  return Internal("cannot create " + path + ": " + ErrnoText(err));
}

}  // namespace bff
