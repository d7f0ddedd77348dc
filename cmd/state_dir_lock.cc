#include "cmd/state_dir_lock.h"

#include <unistd.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/status.h"

namespace rbdcsi {

absl::StatusOr<UniqueFd> LockStateDir(const std::string& state_dir, std::string_view role) {
  const std::string path = state_dir + "/lock";
  absl::StatusOr<UniqueFd> fd = LockFileExclusive(path);
  if (absl::IsFailedPrecondition(fd.status())) {
    // "PID ROLE"; servers before gc existed wrote only "PID".
    const std::string text = ReadFileUpTo(path, 64).value_or("");
    std::vector<std::string> words =
        absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
    int pid = 0;
    const bool has_pid = !words.empty() && absl::SimpleAtoi(words[0], &pid) && pid > 0;
    const bool has_role = words.size() > 1 && (words[1] == "serve" || words[1] == "gc");
    return absl::FailedPreconditionError(absl::StrCat(
        "--state-dir ", state_dir, " is in use by another rbdcsi ", has_role ? words[1] : "serve",
        has_pid ? absl::StrCat(" (pid ", pid, ")") : ""));
  }
  if (!fd.ok()) return fd.status();
  const std::string content = absl::StrCat(getpid(), " ", AsAbsl(role), "\n");
  if (ftruncate(fd->get(), 0) != 0 || pwrite(fd->get(), content.data(), content.size(), 0) < 0) {
    Logger("server")->warn("could not write the pid into {}", path);
  }
  return fd;
}

}  // namespace rbdcsi
