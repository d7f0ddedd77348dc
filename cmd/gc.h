// `rbdcsi gc`: the safe form of the cron `rbd unmap` stop-gap. It unmaps a device only when it is
// provably this plugin's, no volume record names it or its image, nothing holds it in any mount
// namespace, and it has been seen that way for longer than the grace period.
//
// Which devices are this plugin's: those of mappers whose List() returns only devices the plugin
// mapped, told apart by the kernel's own record of them (MapperTraits::lists_only_own): the loop
// mapper's loop devices whose backing file lies in --data-dir/images, the fuse mapper's loop
// devices whose backing file lies in an rbd-fuse mount under --fuse-dir. A /dev/rbdN or
// /dev/nbdN carries no mark of who mapped it (an administrator, another plugin, an older rbdcsi
// with a lost state directory), so gc never unmaps those: it lists them as not-ours.
#ifndef RBDCSI_CMD_GC_H_
#define RBDCSI_CMD_GC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "driver/volume_record.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// One device as gc found it.
struct GcDevice {
  std::string mapper;
  MappedDevice device;
  bool ours = false;  // its mapper lists only devices this plugin mapped
  // What holds it (DescribeHolder() of each holder the scan found); empty when free.
  std::vector<std::string> holders;
  absl::Status scan;  // the holder scan's failure, if it failed
  // Seconds since gc first saw it without a record (0 when seen for the first time now).
  int64_t unrecorded_for = 0;
};

enum class GcVerdict { kKeep, kUnmap };

struct GcDecision {
  GcDevice device;
  GcVerdict verdict = GcVerdict::kKeep;
  std::string reason;
};

// The record that accounts for `device`, if any: one of the same mapper naming its device, or
// its image (an unfinished stage records the image before the device, and unstage removes every
// mapping of the image).
const VolumeRecord* GcRecordOf(const GcDevice& device, const std::vector<VolumeRecord>& records);

// Decides each device, in this order: not ours, named by a record (its device, or its image for
// a record without device: an unfinished stage), held, unscannable, younger than `grace_seconds`
// → keep, with the reason; otherwise unmap.
std::vector<GcDecision> DecideGc(const std::vector<GcDevice>& devices,
                                 const std::vector<VolumeRecord>& records, int64_t grace_seconds);

// The key under which gc remembers when it first saw an unrecorded device: mapper, path,
// numbers and image, so a device number reused for another image starts afresh.
std::string GcSeenKey(const GcDevice& device);

// Parses and prints the first-seen memory (STATE_DIR/gc-seen.json: {"key": unix seconds}).
// Unparsable text is an empty memory (every device counts as seen for the first time).
std::map<std::string, int64_t> ParseGcSeen(std::string_view text);
std::string FormatGcSeen(const std::map<std::string, int64_t>& seen);

// One line per decision: device, mapper, image, what was (or, with dry_run, would be) done, why.
// `outcomes` holds, for each unmap verdict, "" when it worked or why it failed (dry_run: empty).
std::string FormatGcTable(const std::vector<GcDecision>& decisions,
                          const std::vector<std::string>& outcomes, bool dry_run);

struct GcFlags {
  std::string state_dir = "/var/lib/rbdcsi/state";
  std::string data_dir = "/var/lib/rbdcsi/data";
  std::string fuse_dir = "/run/rbdcsi/fuse";
  std::string rbd_program = "rbd";
  double grace_seconds = 600;
  bool dry_run = false;
};

void AddGcFlags(CLI::App& app, GcFlags& flags);

// Takes the state directory's lock (refusing while `rbdcsi serve` holds it), lists the devices
// of every mapper, scans each for holders, decides, unmaps (unless dry_run) and prints the table.
// Returns the exit code: 0 when every unmap verdict was carried out (or dry_run), 1 when an
// unmap failed, 2 on error (the lock is taken, records or mappers unreadable).
int RunGc(const GcFlags& flags);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_GC_H_
