// With an IOMMU that cannot remap interrupts, VFIO refuses to hand out devices (EPERM) unless told to allow unsafe
// interrupts; the library says so instead of "permission denied". Runs only in a guest started with
// `test_vm.ts --no-intremap` (a step of tools/test.sh); skipped in the normal suite.
import assert from "node:assert/strict";
import process from "node:process";
import { describe, it } from "node:test";
import { openDevice } from "../../lib/open.ts";

const env = process.env;
const active = env.VFIO_TS_IN_VM === "1" && env.VFIO_TS_INTREMAP === "off" && env.VFIO_TS_MODE !== "noiommu";
const edu = (env.VFIO_TS_EDU ?? "").split(",")[0];

describe("no interrupt remapping", { skip: !active && "needs the guest with --no-intremap" }, () => {
  const paths = env.VFIO_TS_MODE === "iommufd" ? ["auto", "type1", "iommufd-compat"] as const : ["auto"] as const;
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
