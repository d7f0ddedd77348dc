#include "base/paths.h"

#include <climits>
#include <cstdlib>
#include <filesystem>

namespace rbdcsi {

std::string CanonicalPath(const std::string& path) {
  std::string lexical = std::filesystem::path(path).lexically_normal().string();
  while (lexical.size() > 1 && lexical.back() == '/') lexical.pop_back();
  char resolved[PATH_MAX];
  if (realpath(lexical.c_str(), resolved) != nullptr) return resolved;
  const std::filesystem::path p(lexical);
  if (p.has_parent_path() && p.has_filename() &&
      realpath(p.parent_path().c_str(), resolved) != nullptr) {
    const std::string parent = resolved;
    return (parent == "/" ? "" : parent) + "/" + p.filename().string();
  }
  return lexical;
}

}  // namespace rbdcsi
