// A block device number, split the way mountinfo and sysfs print it ("250:0").
#ifndef RBDCSI_BASE_DEVICE_NUMBER_H_
#define RBDCSI_BASE_DEVICE_NUMBER_H_

namespace rbdcsi {

struct DeviceNumber {
  unsigned major = 0;
  unsigned minor = 0;
  bool operator==(const DeviceNumber& o) const { return major == o.major && minor == o.minor; }
  bool operator!=(const DeviceNumber& o) const { return !(*this == o); }
};

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_DEVICE_NUMBER_H_
