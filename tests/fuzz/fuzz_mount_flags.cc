// libFuzzer target: the mount-flag policy. Input: a first line "<fs_type> <ro|rw>", then one
// flag per line (any bytes but a line feed). Whatever the policy lets through must be safe to
// hand to mount(2).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mounter/mount_flags.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string_view header = text.substr(0, text.find('\n'));
  text.remove_prefix(std::min(text.size(), header.size() + 1));
  const std::string fs(header.substr(0, header.find(' ')));
  const bool read_only = header.size() >= 2 && header.substr(header.size() - 2) == "ro";
  std::vector<std::string> flags;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    flags.emplace_back(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  auto allowed = rbdcsi::ApplyMountFlagPolicy(fs, flags, read_only);
  if (!allowed.ok()) return 0;
  FUZZ_CHECK(fs == "ext4" || fs == "xfs");
  FUZZ_CHECK(!read_only || std::count(allowed->begin(), allowed->end(), "ro") >= 1);
  for (const std::string& flag : *allowed) {
    FUZZ_CHECK(!flag.empty() && flag.size() <= 256);
    for (char c : flag) FUZZ_CHECK(c > 0x20 && c < 0x7f && c != ',');
    FUZZ_CHECK(!(read_only && flag == "rw"));
    const std::string name = flag.substr(0, flag.find('='));
    for (const char* bad :
         {"loop", "offset", "sizelimit", "shared", "rshared", "slave", "rslave", "private",
          "rprivate", "bind", "rbind", "remount", "move", "user", "users", "owner", "group"}) {
      FUZZ_CHECK(name != bad);
    }
    FUZZ_CHECK(name.rfind("X-", 0) != 0 && name.rfind("x-", 0) != 0);
    FUZZ_CHECK(flag != "errors=panic");
  }
  return 0;
}
