// A refused DMA map keeps the kernel's errno: explainMapError returns a DmaMapError (a SystemError with the same
// code and errno), names the mapping, and picks the remedy by errno and backend.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DmaMapError, ERRNO, SystemError, VfioError } from "../../lib/errors.ts";
import { explainMapError } from "../../lib/iommu/map_error.ts";

describe("explainMapError", () => {
  it("keeps code and errno, names the mapping and says what to do", () => {
    const cases: [string, RegExp][] = [["ENOMEM", /RLIMIT_MEMLOCK/], ["ENOSPC", /dma_entry_limit/], [
      "EEXIST",
      /unmap/,
    ]];
    for (const [code, words] of cases) {
      const raw = new SystemError("ioctl", ERRNO[code as "ENOMEM"], { target: "VFIO_IOMMU_MAP_DMA" });
      const e = explainMapError(raw, "VFIO_IOMMU_MAP_DMA", 0x10000n, 4096);
      assert.ok(e instanceof DmaMapError && e instanceof SystemError, `${e}`);
      assert.equal(e.code, code);
      assert.equal(e.errno, raw.errno);
      assert.match(e.message, /VFIO_IOMMU_MAP_DMA IOVA 0x10000 \(\+0x1000\)/);
      assert.match(e.remedy ?? "", words);
      assert.equal(explainMapError(e, "MAP_DMA", 0x10000n, 4096), e, "explained once");
    }
  });

  it("names the usable ranges when an iommufd mapping lies outside them", () => {
    const raw = new SystemError("ioctl", ERRNO.EINVAL);
    const e = explainMapError(raw, "IOMMU_IOAS_MAP", 0x1000n, 4096, [{ start: 0x10000n, end: 0xffffffffn }]);
    assert.ok(e instanceof DmaMapError);
    assert.equal(e.code, "EINVAL");
    assert.match(e.message, /outside the IOAS's usable IOVA ranges: pick an IOVA inside 0x10000-0xffffffff/);
  });

  it("passes anything else through", () => {
    const other = new VfioError("not a system error");
    assert.equal(explainMapError(other, "MAP_DMA", 0n, 4096), other);
    const unknown = new SystemError("ioctl", ERRNO.EIO);
    assert.equal(explainMapError(unknown, "MAP_DMA", 0n, 4096), unknown);
  });
});
