#include "ceph/ceph_store_provider.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace rbdcsi {

absl::StatusOr<ImageStore*> CephStoreProvider::For(std::string_view cluster_id,
                                                   const Credentials& credentials) {
  if (cluster_id.empty()) {
    if (loop_ == nullptr) return absl::NotFoundError("this plugin has no loop backend");
    return loop_;
  }
  ASSIGN_OR_RETURN(ClusterConfig cluster, clusters_->Find(cluster_id));
  Credentials creds = credentials;
  if (creds.user.empty() && creds.key.empty()) {
    if (cluster.controller_user.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cluster ", cluster.cluster_id,
          ": the request carries no secrets (userID, userKey) and the cluster config names no "
          "controllerCredentials"));
    }
    creds.user = cluster.controller_user;
    ASSIGN_OR_RETURN(creds.key, ClusterConfigSource::ReadControllerKey(cluster));
  } else if (creds.user.empty() || creds.key.empty()) {
    return absl::InvalidArgumentError("secrets need both userID and userKey");
  }
  CephImageStore* store = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::unique_ptr<CephImageStore>& slot =
        stores_[absl::StrCat(AsAbsl(cluster_id), "\n", creds.user)];
    if (!slot) slot = std::make_unique<CephImageStore>(cluster, creds, options_);
    store = slot.get();
  }
  store->SetCluster(cluster);
  store->SetCredentials(creds);
  RETURN_IF_ERROR(store->Connect());
  return store;
}

std::vector<std::string> CephStoreProvider::ClusterIds() {
  std::vector<std::string> ids;
  if (loop_ != nullptr) ids.emplace_back();
  for (std::string& id : clusters_->Ids()) ids.push_back(std::move(id));
  return ids;
}

}  // namespace rbdcsi
