// Secret files on disk (mode 0600): created once and shared by every process that uses the same data dir.
#pragma once

#include <functional>
#include <string>

#include "common/status.h"

namespace bff {

// Returns the contents of `path`. When it is absent, writes `make()` there (mode 0600, parent directories
// created) without ever replacing a file another process created meanwhile: processes starting together
// on one data dir must agree on one secret, so the loser of the race reads the winner's file.
StatusOr<std::string> LoadOrCreateSecretFile(const std::string& path, const std::function<std::string()>& make);

}  // namespace bff
