// The error layer's own choices: errno names and messages from node:util (the same on Deno and Bun), and the
// generic remedy picked by the kind of target (a typed TargetKind), not by the text around it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { errnoName, remedyFor, SystemError, throwErrno } from "../../lib/errors.ts";

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

  it("takes the target's kind from the caller, never from its text", () => {
    const told = new SystemError("open", 2, { target: "/dev/vfio/3", kind: "vfio-group" });
    assert.equal(told.targetKind, "vfio-group");
    assert.match(told.remedy ?? "", /vfio bind/);
    const untold = new SystemError("open", 2, { target: "/dev/vfio/3" });
    assert.equal(untold.targetKind, "other");
    assert.equal(untold.remedy, undefined, "a path that looks like a group is not taken for one");
    assert.throws(
      () => throwErrno("ioctl", 22, { target: "VFIO_DEVICE_GET_INFO", kind: "vfio-device-ioctl" }),
      (e: unknown) =>
        e instanceof SystemError && e.targetKind === "vfio-device-ioctl" && /bound to an iommufd/.test(e.remedy ?? ""),
    );
    assert.throws(
      () => throwErrno("close", 9, "fd 42"),
      (e: unknown) => e instanceof SystemError && e.target === "fd 42" && e.targetKind === "other",
    );
  });

  it("picks the remedy by errno and kind", () => {
    assert.match(remedyFor("open", "EACCES", "noiommu-group") ?? "", /CAP_SYS_RAWIO/);
    assert.match(remedyFor("open", "ENOENT", "vfio-group") ?? "", /vfio bind/);
    assert.match(remedyFor("open", "ENOENT", "iommufd") ?? "", /CONFIG_IOMMUFD/);
    assert.equal(remedyFor("open", "ENOENT", "other"), undefined);
    assert.match(remedyFor("ioctl", "EINVAL", "vfio-device-ioctl") ?? "", /bound to an iommufd/);
    assert.equal(remedyFor("ioctl", "EINVAL", "vfio-ioctl"), undefined);
    assert.match(
      new SystemError("open", 16, { target: "/dev/vfio/7", kind: "vfio-group" }).remedy ?? "",
      /already has it open/,
    );
  });
});
