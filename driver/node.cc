#include "driver/node.h"

namespace rbdcsi {

void NodeOps::GetCapabilities(csi::v1::NodeGetCapabilitiesResponse* resp) {
  using Rpc = csi::v1::NodeServiceCapability::RPC;
  for (auto type : {Rpc::STAGE_UNSTAGE_VOLUME, Rpc::GET_VOLUME_STATS, Rpc::VOLUME_CONDITION,
                    Rpc::EXPAND_VOLUME, Rpc::SINGLE_NODE_MULTI_WRITER}) {
    resp->add_capabilities()->mutable_rpc()->set_type(type);
  }
}

}  // namespace rbdcsi
