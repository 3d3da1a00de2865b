/**
 * Host unit tests of how vfio-ts treats kernel answers it must not trust (fuzzed or buggy kernels): a huge `argsz`,
 * counts that overrun the buffer, looping or out-of-buffer capability chains. Each is a `MalformedReplyError`,
 * never a `RangeError` or a multi-gigabyte allocation. The buffers are built by hand with the ABI structs.
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_FLAG_CAPS,
  VfioInfoCapHeader,
  VfioIommuType1Info,
  VfioIommuType1InfoCapIovaRange,
  VfioIovaRange,
  VfioPciDependentDevice,
  VfioPciHotResetInfo,
  VfioRegionInfo,
  VfioRegionInfoCapSparseMmap,
  VfioRegionSparseMmapArea,
} from "../../lib/abi/vfio.ts";
import { decodeType1Info } from "../../lib/container.ts";
import { decodeHotResetInfo } from "../../lib/device.ts";
import { MalformedReplyError } from "../../lib/errors.ts";
import { capabilityChain, growingReply, MAX_REPLY_BYTES } from "../../lib/kernel_reply.ts";
import { decodeRegionInfo } from "../../lib/region_info.ts";

/** A type1 info buffer with one IOVA-range capability claiming `nr` ranges and holding `room` of them. */
function type1Info(nr: number, room: number): Uint8Array {
  const info = VfioIommuType1Info.alloc(VfioIommuType1InfoCapIovaRange.size + room * VfioIovaRange.size);
  info.flags = VFIO_IOMMU_INFO_CAPS | VFIO_IOMMU_INFO_PGSIZES;
  info.iova_pgsizes = 0x40201000n;
  info.cap_offset = VfioIommuType1Info.size;
  const cap = VfioIommuType1InfoCapIovaRange.view(info.bytes, VfioIommuType1Info.size);
  cap.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
  cap.nr_iovas = nr;
  for (let i = 0; i < room; i++) {
    const r = VfioIovaRange.view(info.bytes, VfioIommuType1Info.size + 16 + i * 16);
    r.start = BigInt(i) << 32n;
    r.end = (BigInt(i) << 32n) + 0xfffffn;
  }
  return info.bytes;
}

describe("kernel replies", () => {
  it("a huge argsz is refused before anything is allocated", () => {
    let calls = 0;
    assert.throws(
      () =>
        growingReply("VFIO_IOMMU_GET_INFO", VfioIommuType1Info, (v) => {
          calls++;
          v.argsz = 0xffffffff; // 4.29 GB, as a fuzzed kernel answered
        }),
      (e: unknown) => e instanceof MalformedReplyError && /4294967295-byte buffer/.test(e.message),
    );
    assert.equal(calls, 1);
    // A sane growth is followed, and an answer that keeps growing is refused.
    const v = growingReply("x", VfioIommuType1Info, (v) => {
      if (v.bytes.length < 64) v.argsz = 64;
    });
    assert.equal(v.bytes.length, 64);
    let size = 32;
    assert.throws(() => growingReply("x", VfioIommuType1Info, (v) => void (v.argsz = size += 8)), MalformedReplyError);
    assert.ok(MAX_REPLY_BYTES <= 1 << 20);
  });

  it("type1 info: IOVA ranges are decoded, and a count beyond the buffer is an error", () => {
    const ok = decodeType1Info(type1Info(2, 2));
    assert.equal(ok.pageSizes, 0x40201000n);
    assert.deepEqual(ok.iovaRanges, [{ start: 0n, end: 0xfffffn }, { start: 1n << 32n, end: (1n << 32n) + 0xfffffn }]);
    for (const nr of [3, 0x10000, 0xffffffff]) {
      assert.throws(() => decodeType1Info(type1Info(nr, 2)), MalformedReplyError, `nr_iovas ${nr}`);
    }
  });

  it("capability chains that loop or leave the buffer are errors", () => {
    const bytes = new Uint8Array(64);
    const a = VfioInfoCapHeader.view(bytes, 24);
    a.id = 1;
    a.next = 40;
    const b = VfioInfoCapHeader.view(bytes, 40);
    b.id = 2;
    b.next = 0;
    assert.deepEqual(capabilityChain("t", bytes, 24, 24).map((c) => c.id), [1, 2]);
    b.next = 24; // loop
    assert.throws(() => capabilityChain("t", bytes, 24, 24), MalformedReplyError);
    b.next = 60; // header would end past the buffer
    assert.throws(() => capabilityChain("t", bytes, 24, 24), MalformedReplyError);
    assert.throws(() => capabilityChain("t", bytes, 8, 24), MalformedReplyError, "inside the fixed part");
  });

  it("hot reset info: devices are decoded, and a count beyond the buffer is an error", () => {
    const info = VfioPciHotResetInfo.alloc(2 * VfioPciDependentDevice.size);
    info.count = 2;
    const d = VfioPciDependentDevice.view(info.bytes, VfioPciHotResetInfo.size + VfioPciDependentDevice.size);
    d.segment = 0;
    d.bus = 1;
    d.devfn = (2 << 3) | 1;
    d.group_id = 7;
    assert.deepEqual(decodeHotResetInfo(info.bytes)[1], { address: "0000:01:02.1", groupId: 7 });
    info.count = 3;
    assert.throws(() => decodeHotResetInfo(info.bytes), MalformedReplyError);
    info.count = 0xffffffff;
    assert.throws(() => decodeHotResetInfo(info.bytes), MalformedReplyError);
  });

  it("region info: a sparse-mmap area count beyond the buffer is an error", () => {
    const info = VfioRegionInfo.alloc(VfioRegionInfoCapSparseMmap.size + VfioRegionSparseMmapArea.size);
    info.flags = VFIO_REGION_INFO_FLAG_CAPS;
    info.size = 0x4000n;
    info.cap_offset = VfioRegionInfo.size;
    const cap = VfioRegionInfoCapSparseMmap.view(info.bytes, VfioRegionInfo.size);
    cap.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
    cap.nr_areas = 1;
    const area = VfioRegionSparseMmapArea.view(info.bytes, VfioRegionInfo.size + VfioRegionInfoCapSparseMmap.size);
    area.size = 0x1000n;
    assert.deepEqual(decodeRegionInfo(0, info.bytes).sparseAreas, [{ offset: 0, size: 0x1000 }]);
    cap.nr_areas = 0x80000000;
    assert.throws(() => decodeRegionInfo(0, info.bytes), MalformedReplyError);
  });
});
