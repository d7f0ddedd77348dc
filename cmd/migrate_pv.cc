#include "cmd/migrate_pv.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "driver/endpoint.h"
#include "migrate/yaml.h"

namespace rbdcsi {

void AddMigratePvFlags(CLI::App& app, MigratePvFlags& flags) {
  app.add_option("FILE", flags.input,
                 "In-tree rbd PersistentVolumes, YAML or JSON, one, several or a List ('-': stdin)")
      ->capture_default_str();
  app.add_option("--drivername", flags.options.driver_name, "CSI driver name of the new PVs")
      ->capture_default_str();
  app.add_option("--mapper", flags.options.mapper, "Mapper the nodes use for these volumes")
      ->capture_default_str();
}

int RunMigratePv(const MigratePvFlags& flags, std::istream& in, std::ostream& out,
                 std::ostream& err) {
  constexpr char kName[] = "rbdcsi migrate-pv: ";
  if (absl::Status st = ValidateDriverName(flags.options.driver_name); !st.ok()) {
    err << kName << "--drivername: " << st.message() << "\n";
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::vector<nlohmann::json>> docs = ParseYamlDocuments(text.str());
  if (!docs.ok()) {
    err << kName << docs.status().message() << "\n";
    return 2;
  }
  if (docs->empty()) {
    err << kName << "the input holds no object\n";
    return 2;
  }
  const MigrateResult result = MigrateInTreePvs(*docs, flags.options);
  for (size_t i = 0; i < result.volumes.size(); ++i) {
    if (i > 0) out << "---\n";
    out << EmitYaml(result.volumes[i]);
  }
  for (const std::string& w : result.warnings) err << kName << "warning: " << w << "\n";
  for (const std::string& r : result.refusals) err << kName << "refused: " << r << "\n";
  return result.refusals.empty() ? 0 : 1;
}

int RunMigratePv(const MigratePvFlags& flags) {
  if (flags.input == "-") return RunMigratePv(flags, std::cin, std::cout, std::cerr);
  std::ifstream file(flags.input);
  if (!file) {
    std::cerr << "rbdcsi migrate-pv: cannot read " << flags.input << "\n";
    return 2;
  }
  return RunMigratePv(flags, file, std::cout, std::cerr);
}

}  // namespace rbdcsi
