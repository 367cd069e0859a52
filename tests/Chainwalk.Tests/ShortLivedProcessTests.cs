using System.Text;
using Chainwalk.Host;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// The huge-page advice of a short-lived CLI process (ShortLivedProcess.LargeHeap) finds the collector's reserved range in
/// /proc/self/maps, read as bytes: each line's range, and whether it is anonymous (no path after the four fields).
/// </summary>
public class ShortLivedProcessTests
{
    public static TheoryData<string, bool, ulong, ulong, bool> MapsLines() => new()
    {
        { "7f2d67a40000-7f2d69a78000 r-xp 00000000 fe:00 12052196                   /tmp/cli/Chainwalk.Cli.r2r.dll", true, 0x7f2d67a40000, 0x7f2d69a78000, false },
        { "7fa833771000-7fb433771000 ---p 00000000 00:00 0 ", true, 0x7fa833771000, 0x7fb433771000, true },
        { "7fa833771000-7fa83377b000 rw-p 00000000 00:00 0", true, 0x7fa833771000, 0x7fa83377b000, true },
        { "7ffd1c5e1000-7ffd1c602000 rw-p 00000000 00:00 0                          [stack]", true, 0x7ffd1c5e1000, 0x7ffd1c602000, false },
        { "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]", true, 0xffffffffff600000, 0xffffffffff601000, false },
        { "55d0C0A00000-55d0c0a21000 r--p 00000000 fe:00 1 /usr/bin/x", true, 0x55d0c0a00000, 0x55d0c0a21000, false },
        { "", false, 0, 0, false },
        { "not a mapping", false, 0, 0, false },
        { "-7f00 rw-p 0 0:0 0", false, 0, 0, false },
        { "7g00-7f00 rw-p 0 0:0 0", false, 0, 0, false },
        { "10000000000000000-1 rw-p 0 0:0 0", false, 0, 0, false },
    };

    [Theory]
    [MemberData(nameof(MapsLines))]
    public void Maps_line_gives_its_range_and_whether_it_is_anonymous(string line, bool ok, ulong start, ulong end, bool anonymous)
    {
        Assert.Equal(ok, ShortLivedProcess.TryMapping(Encoding.ASCII.GetBytes(line), out ulong s, out ulong e, out bool anon));
        if (!ok) return;
        Assert.Equal((start, end, anonymous), (s, e, anon));
    }
}
