// The error layer's own choices: errno names and messages from node:util (the same on Deno and Bun), and the
// generic remedy picked by the kind of target (a typed TargetKind), not by the text around it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { errnoName, remedyFor, SystemError, targetKind } from "../../lib/errors.ts";

describe("errors", () => {
  it("names errnos as the runtime does, and unknown ones as E<n>", () => {
    assert.equal(errnoName(1), "EPERM");
    assert.equal(errnoName(16), "EBUSY");
    assert.equal(errnoName(9999), "E9999");
    const e = new SystemError("open", 2, { target: "/nonexistent" });
    assert.equal(e.code, "ENOENT");
    assert.match(e.message, /^open \/nonexistent: no such file or directory \[ENOENT\]/);
    assert.match(new SystemError("ioctl", 9999).message, /ioctl: failed \[E9999\]/);
  });

  it("classifies targets by their whole path or ioctl name", () => {
    const cases: [string | undefined, string][] = [
      ["/dev/vfio/3", "vfio-group"],
      ["/dev/vfio/noiommu-0", "noiommu-group"],
      ["/dev/vfio/devices/vfio0", "vfio-cdev"],
      ["/dev/vfio/vfio", "vfio-container"],
      ["/dev/iommu", "iommufd"],
      ["VFIO_GROUP_SET_CONTAINER", "vfio-ioctl"],
      ["VFIO_DEVICE_GET_INFO", "vfio-device-ioctl"],
      ["VFIO_DEVICE_BIND_IOMMUFD", "vfio-ioctl"],
      ["IOMMU_IOAS_MAP", "iommufd-ioctl"],
      ["/dev/vfio/3x", "other"],
      ["/tmp/dev/vfio/3", "other"],
      [undefined, "other"],
    ];
    for (const [target, kind] of cases) assert.equal(targetKind(target), kind, String(target));
  });

  it("picks the remedy by errno and kind", () => {
    assert.match(remedyFor("open", "EACCES", "noiommu-group") ?? "", /CAP_SYS_RAWIO/);
    assert.match(remedyFor("open", "ENOENT", "vfio-group") ?? "", /vfio bind/);
    assert.match(remedyFor("open", "ENOENT", "iommufd") ?? "", /CONFIG_IOMMUFD/);
    assert.equal(remedyFor("open", "ENOENT", "other"), undefined);
    assert.match(remedyFor("ioctl", "EINVAL", "vfio-device-ioctl") ?? "", /bound to an iommufd/);
    assert.equal(remedyFor("ioctl", "EINVAL", "vfio-ioctl"), undefined);
    assert.match(new SystemError("open", 16, { target: "/dev/vfio/7" }).remedy ?? "", /already has it open/);
  });
});
