// `rbdcsi gc`'s decisions and output; gathering and acting is in gc_cli.cc.
#include "cmd/gc.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {
namespace {

std::string Decide(const GcDevice& d, const std::vector<VolumeRecord>& records,
                   int64_t grace_seconds, GcVerdict* verdict) {
  *verdict = GcVerdict::kKeep;
  if (!d.ours) {
    return absl::StrCat("not-ours: the ", d.mapper,
                        " mapper cannot tell its devices from others' (an administrator's, "
                        "another plugin's); never unmapped by gc");
  }
  if (const VolumeRecord* r = GcRecordOf(d, records)) {
    return absl::StrCat("recorded: the record of volume ", r->volume_id, " (step ",
                        AsAbsl(StageStepName(r->step)),
                        ") names it; NodeUnstageVolume of that volume unmaps it");
  }
  if (!d.holders.empty()) return absl::StrCat("held: ", absl::StrJoin(d.holders, "; "));
  if (!d.scan.ok()) return absl::StrCat("unscanned: ", d.scan.message());
  if (d.unrecorded_for < grace_seconds) {
    return absl::StrCat("young: without a record for ", d.unrecorded_for, " s of the ",
                        grace_seconds, " s grace period");
  }
  *verdict = GcVerdict::kUnmap;
  return absl::StrCat("orphan: no record, no holder, without a record for ", d.unrecorded_for,
                      " s (grace ", grace_seconds, " s)");
}

}  // namespace

const VolumeRecord* GcRecordOf(const GcDevice& d, const std::vector<VolumeRecord>& records) {
  for (const VolumeRecord& r : records) {
    if (r.mapper != d.mapper) continue;
    const bool same_device =
        r.has_device() && r.device.major == d.device.major && r.device.minor == d.device.minor;
    if (same_device || r.image == d.device.image) return &r;
  }
  return nullptr;
}

std::vector<GcDecision> DecideGc(const std::vector<GcDevice>& devices,
                                 const std::vector<VolumeRecord>& records, int64_t grace_seconds) {
  std::vector<GcDecision> out;
  for (const GcDevice& d : devices) {
    GcDecision decision{d, GcVerdict::kKeep, ""};
    decision.reason = Decide(d, records, grace_seconds, &decision.verdict);
    out.push_back(std::move(decision));
  }
  return out;
}

std::string GcSeenKey(const GcDevice& d) {
  return absl::StrCat(d.mapper, " ", d.device.path, " ", d.device.major, ":", d.device.minor, " ",
                      d.device.image.ToString());
}

std::map<std::string, int64_t> ParseGcSeen(std::string_view text) {
  std::map<std::string, int64_t> seen;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return seen;
  for (const auto& [key, value] : j.items()) {
    if (value.is_number_integer()) seen[key] = value.get<int64_t>();
  }
  return seen;
}

std::string FormatGcSeen(const std::map<std::string, int64_t>& seen) {
  return nlohmann::json(seen).dump(2) + "\n";
}

std::string FormatGcTable(const std::vector<GcDecision>& decisions,
                          const std::vector<std::string>& outcomes, bool dry_run) {
  std::ostringstream out;
  out << "DEVICE\tMAPPER\tIMAGE\tDECISION\tREASON\n";
  size_t unmaps = 0, done = 0;
  for (size_t i = 0; i < decisions.size(); ++i) {
    const GcDecision& d = decisions[i];
    std::string what = "keep";
    if (d.verdict == GcVerdict::kUnmap) {
      ++unmaps;
      const std::string& outcome = i < outcomes.size() ? outcomes[i] : "";
      what = dry_run ? "would-unmap" : outcome.empty() ? "unmapped" : "unmap-failed";
      done += !dry_run && outcome.empty();
      if (!dry_run && !outcome.empty()) what += " (" + outcome + ")";
    }
    out << d.device.device.path << "\t" << d.device.mapper << "\t"
        << d.device.device.image.ToString() << "\t" << what << "\t" << d.reason << "\n";
  }
  out << decisions.size() << " device(s); " << unmaps << (dry_run ? " would be" : "") << " unmapped"
      << (dry_run ? "" : absl::StrCat(" (", done, " done)")) << "\n";
  return out.str();
}

}  // namespace rbdcsi
