// With an IOMMU that cannot remap interrupts, VFIO refuses to hand out devices (EPERM) unless told to allow unsafe
// interrupts; the library says so instead of "permission denied". Runs only in a guest started with
// `test_vm.ts --no-intremap` (a step of tools/test.sh); skipped in the normal suite.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { openDevice } from "../../lib/open.ts";
import { guest, releaseDevices, skipUnless } from "./guest.ts";

const edu = guest.edu ?? "";
const skip = skipUnless(
  guest.intremap !== "off"
    ? "needs the guest with --no-intremap (test_vm.ts --no-intremap)"
    : guest.mode === "noiommu" && "no IOMMU in noiommu mode",
  "no interrupt remapping",
);
afterEach(releaseDevices);

describe("no interrupt remapping", { skip }, () => {
  const paths = guest.mode === "iommufd" ? ["auto", "type1", "iommufd-compat"] as const : ["auto"] as const;
  for (const iommu of paths) {
    it(`${iommu}: the refusal names interrupt remapping and the way out`, () => {
      assert.throws(() => openDevice(edu, { iommu }), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, /interrupt remapping|remap interrupts/, e.message);
        assert.match(e.message, /allow_unsafe_interrupts/, e.message);
        return true;
      });
    });
  }
});
