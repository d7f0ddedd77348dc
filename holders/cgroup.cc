#include "holders/cgroup.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

constexpr size_t kContainerIdLength = 64;

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

absl::StatusOr<CgroupLine> ParseCgroupLine(absl::string_view line) {
  // The path is last and may contain ':', so split only twice.
  const std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed cgroup line (expected \"ID:CONTROLLERS:PATH\"): \"", line, "\""));
  }
  CgroupLine out;
  if (!AllDigits(parts[0]) || !absl::SimpleAtoi(parts[0], &out.hierarchy_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed cgroup line (bad hierarchy id): \"", line, "\""));
  }
  out.controllers = absl::StrSplit(parts[1], ',', absl::SkipEmpty());
  out.path = std::string(parts[2]);
  return out;
}

bool IsLowerHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
  });
}

bool IsContainerId(absl::string_view s) { return s.size() == kContainerIdLength && IsLowerHex(s); }

// Pod UIDs are UUIDs (36 characters with dashes), except for static pods, whose UID is a
// 32-digit hash of the manifest.
std::string PodUidOrEmpty(absl::string_view s) {
  std::string uid = absl::StrReplaceAll(s, {{"_", "-"}});
  const bool valid =
      (uid.size() == 32 || uid.size() == 36) && std::all_of(uid.begin(), uid.end(), [](char c) {
        return c == '-' || absl::ascii_isxdigit(static_cast<unsigned char>(c));
      });
  return valid ? uid : std::string();
}

// "pod<uid>" (cgroupfs driver) or "...kubepods...-pod<uid_with_underscores>.slice" (systemd
// driver), the latter possibly as the first part of "<slice>:<prefix>:<id>".
std::string PodUidFromComponent(absl::string_view component) {
  absl::string_view c = component.substr(0, component.find(':'));
  if (absl::ConsumeSuffix(&c, ".slice")) {
    const size_t pos = c.rfind("-pod");
    if (pos == absl::string_view::npos || !absl::StrContains(c.substr(0, pos), "kubepods")) {
      return "";
    }
    return PodUidOrEmpty(c.substr(pos + 4));
  }
  if (absl::ConsumePrefix(&c, "pod")) return PodUidOrEmpty(c);
  return "";
}

struct RuntimePrefix {
  absl::string_view prefix;
  absl::string_view runtime;
};

constexpr RuntimePrefix kRuntimePrefixes[] = {
    {"cri-containerd", "containerd"},
    {"crio", "cri-o"},
    {"docker", "docker"},
};

// Recognises "<prefix>-<id>[.scope]" (systemd driver; CRI-O also with cgroupfs) and
// "<slice>:<prefix>:<id>" (a runtime given a systemd-style cgroupsPath while using cgroupfs).
// Fills container id and runtime; returns false when the component names no container.
bool ContainerFromComponent(absl::string_view component, ContainerIdentity* out) {
  const std::vector<absl::string_view> colon_parts = absl::StrSplit(component, ':');
  if (colon_parts.size() == 3) {
    for (const RuntimePrefix& p : kRuntimePrefixes) {
      if (colon_parts[1] == p.prefix && IsContainerId(colon_parts[2])) {
        out->container_id = std::string(colon_parts[2]);
        out->runtime = std::string(p.runtime);
        return true;
      }
    }
    return false;
  }
  absl::string_view c = component;
  absl::ConsumeSuffix(&c, ".scope");
  for (const RuntimePrefix& p : kRuntimePrefixes) {
    absl::string_view id = c;
    if (absl::ConsumePrefix(&id, p.prefix) && absl::ConsumePrefix(&id, "-") && IsContainerId(id)) {
      out->container_id = std::string(id);
      out->runtime = std::string(p.runtime);
      return true;
    }
  }
  return false;
}

ContainerIdentity IdentifyPath(absl::string_view path) {
  // cgroup v2 marks the cgroup of a process that outlived it, e.g. one exiting right now.
  absl::ConsumeSuffix(&path, " (deleted)");
  ContainerIdentity id;
  absl::string_view previous;
  // Nested runtimes (kind, Docker-in-Docker) stack containers; the innermost one wins.
  for (absl::string_view component : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    std::string uid = PodUidFromComponent(component);
    if (!uid.empty()) id.pod_uid = std::move(uid);

    if (ContainerFromComponent(component, &id)) {
      // Found; keep scanning for a nested one.
    } else if (IsContainerId(component)) {
      // cgroupfs driver: the bare id says nothing about the runtime, except under /docker.
      id.container_id = std::string(component);
      id.runtime = previous == "docker" ? "docker" : "";
    }
    previous = component;
  }
  return id;
}

int Score(const ContainerIdentity& id) {
  return (id.container_id.empty() ? 0 : 2) + (id.pod_uid.empty() ? 0 : 1);
}

}  // namespace

absl::StatusOr<std::vector<CgroupLine>> ParseCgroupFile(std::string_view text) {
  std::vector<CgroupLine> lines;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(AsAbsl(text), '\n')) {
    ++line_number;
    if (line.empty()) continue;
    absl::StatusOr<CgroupLine> parsed = ParseCgroupLine(line);
    if (!parsed.ok()) return Annotate(parsed.status(), absl::StrCat("line ", line_number));
    lines.push_back(*std::move(parsed));
  }
  return lines;
}

ContainerIdentity IdentifyContainer(std::string_view cgroup_text) {
  // v1 hierarchies normally agree; take the most informative line (the first one on a tie).
  ContainerIdentity best;
  for (absl::string_view line : absl::StrSplit(AsAbsl(cgroup_text), '\n', absl::SkipEmpty())) {
    absl::StatusOr<CgroupLine> parsed = ParseCgroupLine(line);
    if (!parsed.ok()) continue;
    ContainerIdentity id = IdentifyPath(parsed->path);
    if (Score(id) > Score(best)) best = std::move(id);
  }
  return best;
}

}  // namespace rbdcsi
