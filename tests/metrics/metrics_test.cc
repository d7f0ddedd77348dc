// The metrics: command labels and timing, RPC outcomes, the Prometheus text and its endpoint.
#include <map>
#include <regex>
#include <set>

#include "absl/strings/str_split.h"
#include "csi.pb.h"
#include "driver/rpc_metrics.h"
#include "driver/volume_record.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "holders/holders.h"
#include "metrics/command_runner.h"
#include "metrics/prometheus_metrics.h"
#include "metrics/testing/fake_metrics.h"
#include "tests/metrics/scrape.h"
#include "tests/support/scripted_command_runner.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(CommandLabelTest, KeepsWhatTheCommandDoesNotWhatItWorksOn) {
  EXPECT_EQ(CommandLabel({"rbd", "device", "map", "pool/image", "--id", "admin"}),
            "rbd device map");
  EXPECT_EQ(CommandLabel({"/usr/bin/rbd", "device", "list", "--format", "json"}),
            "rbd device list");
  EXPECT_EQ(CommandLabel({"mkfs.ext4", "-F", "/dev/loop3"}), "mkfs.ext4");
  EXPECT_EQ(CommandLabel({"rbd-nbd", "map", "secretimagename"}), "rbd-nbd map");
  EXPECT_EQ(CommandLabel({"rbd", "map", "image"}), "rbd map");
  EXPECT_EQ(CommandLabel({"rbd", "device", "map", "list"}), "rbd device map");  // at most two
  EXPECT_EQ(CommandLabel({}), "");
}

TEST(MeasuredCommandRunnerTest, CountsEveryResult) {
  ScriptedCommandRunner inner;
  FakeMetrics metrics;
  auto runner = NewMeasuredCommandRunner(&inner, metrics);
  inner.Answer(0, "", "");
  inner.Answer(16, "", "busy");
  inner.Answer(absl::DeadlineExceededError("killed"));
  inner.Answer(absl::NotFoundError("no rbd"));
  EXPECT_THAT(runner->Run({"rbd", "device", "unmap", "/dev/rbd0"}), IsOk());
  absl::StatusOr<CommandResult> busy = runner->Run({"rbd", "device", "unmap", "/dev/rbd0"});
  ASSERT_THAT(busy, IsOk());
  EXPECT_EQ(busy->exit_code, 16);  // passed through unchanged
  EXPECT_THAT(runner->Run({"rbd", "device", "map", "p/i"}), Not(IsOk()));
  EXPECT_THAT(runner->Run({"rbd", "device", "map", "p/i"}), Not(IsOk()));
  EXPECT_THAT(metrics.calls(),
              ElementsAre("Command(rbd device unmap,ok)", "Command(rbd device unmap,failed)",
                          "Command(rbd device map,timeout)", "Command(rbd device map,error)"));
}

TEST(RpcMetricsObserverTest, UnstageOutcomesAndBlockedVolumes) {
  FakeMetrics metrics;
  CallTracker::Observer observe = RpcMetricsObserver(metrics);
  csi::v1::NodeUnstageVolumeRequest unstage;
  unstage.set_volume_id("rbd/held");
  observe("NodeUnstageVolume", unstage, absl::FailedPreconditionError("held"), 0.1);
  observe("NodeUnstageVolume", unstage, absl::AbortedError("busy"), 0.1);
  observe("NodeUnstageVolume", unstage, absl::OkStatus(), 0.1);
  observe("Probe", csi::v1::ProbeRequest(), absl::OkStatus(), 0.1);
  EXPECT_THAT(
      metrics.calls(),
      ElementsAre("Rpc(NodeUnstageVolume,FAILED_PRECONDITION)", "UnstageAttempt(busy)",
                  "UnstageBlocked(rbd/held,true)", "Rpc(NodeUnstageVolume,ABORTED)",
                  "UnstageAttempt(conflict)", "Rpc(NodeUnstageVolume,OK)",
                  "UnstageAttempt(unmapped)", "UnstageBlocked(rbd/held,false)", "Rpc(Probe,OK)"));
}

TEST(PrometheusMetricsTest, TextHasEveryFamilyWithItsLabels) {
  PrometheusMetrics metrics([] { return std::map<std::string, int>{{"staged", 2}}; });
  metrics.Rpc("NodeStageVolume", "OK", 0.02);
  metrics.Rpc("NodeStageVolume", "OK", 0.03);
  metrics.UnstageAttempt("busy");
  metrics.UnstageBlocked("rbd/a", true);
  metrics.UnstageBlocked("rbd/b", true);
  metrics.UnstageBlocked("rbd/b", false);
  metrics.HolderFound("mount", "private", "node_exporter");
  metrics.HolderScan(0.1);
  metrics.HolderWait("released", 0.2);
  metrics.Reclaim("ok");
  metrics.Command("rbd device map", "failed", 1.5);
  const std::string text = metrics.Text();
  for (const char* line : {
           "rbdcsi_rpc_duration_seconds_count{code=\"OK\",method=\"NodeStageVolume\"} 2",
           "rbdcsi_unstage_attempts_total{outcome=\"busy\"} 1",
           "rbdcsi_busy_volumes 1",
           "rbdcsi_holders_found_total{command=\"node_exporter\",kind=\"mount\","
           "propagation=\"private\"} 1",
           "rbdcsi_holder_scan_duration_seconds_count 1",
           "rbdcsi_holder_wait_duration_seconds_count{outcome=\"released\"} 1",
           "rbdcsi_reclaims_total{outcome=\"ok\"} 1",
           "rbdcsi_command_duration_seconds_count{command=\"rbd device map\",result=\"failed\"} 1",
           "rbdcsi_volumes{step=\"staged\"} 2",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  EXPECT_TRUE(std::regex_search(
      text, std::regex("rbdcsi_unstage_blocked_since_seconds\\{volume_id=\"rbd/a\"\\} 1[0-9.e+]+")))
      << text;
  EXPECT_THAT(text, Not(HasSubstr("volume_id=\"rbd/b\"")));
  EXPECT_THAT(text, HasSubstr("rbdcsi_unstage_oldest_blocked_seconds "));
}

// Every metric the documented alerting rules and the README name exists, so a rename cannot
// silently leave an alert that never fires.
TEST(PrometheusMetricsTest, AlertsAndReadmeNameOnlyMetricsThatExist) {
  PrometheusMetrics metrics([] { return std::map<std::string, int>{{"staged", 1}}; });
  metrics.Rpc("NodeStageVolume", "OK", 0.02);
  metrics.UnstageAttempt("busy");
  metrics.UnstageBlocked("rbd/a", true);
  metrics.HolderFound("mount", "private", "node_exporter");
  metrics.HolderScan(0.1);
  metrics.HolderWait("released", 0.2);
  metrics.Reclaim("ok");
  metrics.Command("rbd device map", "failed", 1.5);
  std::set<std::string> families;
  const std::string text = metrics.Text();
  const std::regex type_line("# TYPE (\\S+) ");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), type_line);
       it != std::sregex_iterator(); ++it) {
    families.insert((*it)[1]);
  }
  const std::string root = std::string(RBDCSI_TESTDATA_DIR) + "/../../";
  const std::regex name("rbdcsi_[a-z_]+");
  const std::regex suffix("_(count|sum|bucket)$");
  int checked = 0;
  for (const std::string file : {"deploy/examples/prometheus-rules.yaml", "README.md",
                                 "docs/unstage.md", "docs/design.md", "docs/architecture.md"}) {
    const std::string doc = ReadFileOrEmpty(root + file);
    ASSERT_FALSE(doc.empty()) << file;
    for (auto it = std::sregex_iterator(doc.begin(), doc.end(), name); it != std::sregex_iterator();
         ++it) {
      const std::string family = std::regex_replace(it->str(), suffix, "");
      EXPECT_EQ(families.count(family), 1u) << file << " names " << it->str();
      ++checked;
    }
  }
  EXPECT_GT(checked, 15);
}

// The label values the code can put on a label, where the set is closed.
std::map<std::string, std::set<std::string>> KnownLabelValues() {
  std::map<std::string, std::set<std::string>> known;
  for (PropagationClass p :
       {PropagationClass::kNone, PropagationClass::kPending, PropagationClass::kPrivate}) {
    known["propagation"].emplace(PropagationClassName(p));
  }
  for (StageStep step :
       {StageStep::kMapping, StageStep::kMapped, StageStep::kStaged, StageStep::kUnmounted}) {
    known["step"].emplace(StageStepName(step));
  }
  for (int code = 0; code <= 16; ++code) {
    known["code"].insert(absl::StatusCodeToString(static_cast<absl::StatusCode>(code)));
  }
  const google::protobuf::ServiceDescriptor* node =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("csi.v1.Node");
  for (int i = 0; node != nullptr && i < node->method_count(); ++i) {
    known["method"].insert(node->method(i)->name());
  }
  // Every result the measured runner reports: run a success, a failure, a timeout, an error.
  ScriptedCommandRunner inner;
  FakeMetrics metrics;
  auto runner = NewMeasuredCommandRunner(&inner, metrics);
  inner.Answer(0, "", "");
  inner.Answer(1, "", "");
  inner.Answer(absl::DeadlineExceededError("killed"));
  inner.Answer(absl::NotFoundError("no rbd"));
  for (int i = 0; i < 4; ++i) (void)runner->Run({"rbd", "device", "map"});
  const std::regex result("Command\\([^,]*,(\\w+)\\)");
  for (const std::string& call : metrics.calls()) {
    std::smatch m;
    if (std::regex_match(call, m, result)) known["result"].insert(m[1]);
  }
  return known;
}

// The alerting rules select on labels the metric has, with values the code can produce: an
// alert on `propagation="private"` must not silently stop firing when the value is renamed.
TEST(PrometheusMetricsTest, AlertsSelectOnLabelsAndValuesTheCodeExports) {
  PrometheusMetrics metrics([] { return std::map<std::string, int>{{"staged", 1}}; });
  metrics.Rpc("NodeStageVolume", "OK", 0.02);
  metrics.UnstageAttempt("busy");
  metrics.UnstageBlocked("rbd/a", true);
  metrics.HolderFound("mount", "private", "node_exporter");
  metrics.HolderScan(0.1);
  metrics.HolderWait("released", 0.2);
  metrics.Reclaim("ok");
  metrics.Command("rbd device map", "failed", 1.5);
  const std::string text = metrics.Text();
  std::map<std::string, std::set<std::string>> labels;  // family -> its label names
  const std::regex sample("(?:^|\\n)(rbdcsi_[a-z_]+?)(?:_count|_sum|_bucket)?\\{([^}]*)\\}");
  const std::regex label_name("(\\w+)=\"");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), sample);
       it != std::sregex_iterator(); ++it) {
    const std::string body = (*it)[2];
    for (auto l = std::sregex_iterator(body.begin(), body.end(), label_name);
         l != std::sregex_iterator(); ++l) {
      labels[(*it)[1]].insert((*l)[1]);
    }
  }
  const std::map<std::string, std::set<std::string>> known = KnownLabelValues();
  ASSERT_EQ(known.at("result").size(), 4u);
  ASSERT_TRUE(known.at("method").count("NodeUnstageVolume"));
  const std::string rules = ReadFileOrEmpty(std::string(RBDCSI_TESTDATA_DIR) +
                                            "/../../deploy/examples/prometheus-rules.yaml");
  ASSERT_FALSE(rules.empty());
  const std::regex selector("(rbdcsi_[a-z_]+?)(?:_count|_sum|_bucket)?\\{([^}]*)\\}");
  const std::regex matcher("(\\w+)\\s*(=~|!~|!=|=)\\s*\"([^\"]*)\"");
  int values = 0;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), selector);
       it != std::sregex_iterator(); ++it) {
    const std::string family = (*it)[1];
    const std::string body = (*it)[2];
    for (auto m = std::sregex_iterator(body.begin(), body.end(), matcher);
         m != std::sregex_iterator(); ++m) {
      const std::string label = (*m)[1];
      EXPECT_EQ(labels[family].count(label), 1u) << family << " has no label " << label;
      auto set = known.find(label);
      if (set == known.end()) continue;
      for (absl::string_view value : absl::StrSplit(std::string((*m)[3]), '|')) {
        EXPECT_EQ(set->second.count(std::string(value)), 1u)
            << family << "{" << label << "}: the code never exports \"" << value << "\"";
        ++values;
      }
    }
  }
  EXPECT_GE(values, 8);  // propagation, result, 3 methods, 3 codes, 2 steps
}

TEST(PrometheusMetricsTest, ServesOverHttpAndRefusesATakenPort) {
  PrometheusMetrics metrics(nullptr);
  metrics.UnstageAttempt("unmapped");
  absl::StatusOr<int> port = metrics.Serve("127.0.0.1:0");
  ASSERT_THAT(port, IsOk());
  ASSERT_GT(*port, 0);
  EXPECT_THAT(Scrape(*port), HasSubstr("rbdcsi_unstage_attempts_total{outcome=\"unmapped\"} 1"));

  PrometheusMetrics second(nullptr);
  EXPECT_THAT(second.Serve("127.0.0.1:" + std::to_string(*port)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot serve metrics")));
}

}  // namespace
}  // namespace rbdcsi
