using Chainwalk.Conntrack;
using Chainwalk.Net;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// What session 9 (estcut2) changed in an established packet's own work, checked against what it replaced: the TCP state
/// table read from one flat byte table (<see cref="TcpTracker.NextState"/>) and the one pass's masquerade device test
/// (<see cref="ConnEntry.MasqueradeDeviceIsNoneOr"/>: device numbers compared instead of names).
/// </summary>
public class EstablishedCutTests
{
    /// <summary>
    /// tcp_conntracks of net/netfilter/nf_conntrack_proto_tcp.c (Linux 6.x) as the kernel writes it: per direction
    /// (original, reply), per flag index (syn, synack, fin, ack, rst, none), the new state for each old state
    /// (sNO sSS sSR sES sFW sCW sLA sTW sCL sS2).
    /// </summary>
    private static readonly string[] KernelRows =
    [
        "sSS sSS sIG sIG sIG sIG sIG sSS sSS sS2",
        "sIV sIV sSR sIV sIV sIV sIV sIV sIV sSR",
        "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
        "sES sIV sES sES sCW sCW sTW sTW sCL sIV",
        "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
        "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
        "sIV sS2 sIV sIV sIV sIV sIV sSS sIV sS2",
        "sIV sSR sIG sIG sIG sIG sIG sIG sIG sSR",
        "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
        "sIV sIG sSR sES sCW sCW sTW sTW sCL sIG",
        "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
        "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
    ];

    private static TcpCtState Parse(string s) => s switch
    {
        "sNO" => TcpCtState.None,
        "sSS" => TcpCtState.SynSent,
        "sSR" => TcpCtState.SynRecv,
        "sES" => TcpCtState.Established,
        "sFW" => TcpCtState.FinWait,
        "sCW" => TcpCtState.CloseWait,
        "sLA" => TcpCtState.LastAck,
        "sTW" => TcpCtState.TimeWait,
        "sCL" => TcpCtState.Close,
        "sS2" => TcpCtState.SynSent2,
        "sIV" => TcpCtState.Invalid,
        "sIG" => TcpCtState.Ignore,
        _ => throw new ArgumentException(s),
    };

    public static TheoryData<int, int> Rows()
    {
        var data = new TheoryData<int, int>();
        for (int dir = 0; dir < 2; dir++)
        {
            for (int index = 0; index < 6; index++) data.Add(dir, index);
        }
        return data;
    }

    /// <summary>Every cell of the flat table is the kernel's (12 rows of 10 old states).</summary>
    [Theory]
    [MemberData(nameof(Rows))]
    public void The_flat_TCP_state_table_is_the_kernels(int dir, int index)
    {
        string[] cells = KernelRows[dir * 6 + index].Split(' ');
        cells.Length.ShouldBe(TcpTracker.StateCount);
        for (int old = 0; old < TcpTracker.StateCount; old++)
            TcpTracker.NextState(dir, index, (TcpCtState)old).ShouldBe(Parse(cells[old]), $"dir {dir} index {index} old {(TcpCtState)old}");
    }

    public static TheoryData<string?, string, bool, bool> MasqueradeCases => new()
    {
        // connection's MASQUERADE device, the plan's output device, whether the plan has the device's number, expected
        { null, "eth0", true, true },
        { null, "eth0", false, true },
        { "eth0", "eth0", true, true },
        { "eth0", "eth0", false, true },
        { "eth0", "eth1", true, false },
        { "eth0", "eth1", false, false },
        { "eth1", "eth0", true, false },
        { "wan9", "wan9", false, true },
    };

    /// <summary>The one pass's test says what comparing <see cref="ConnEntry.MasqueradeDevice"/> by name says, with or without the number.</summary>
    [Theory]
    [MemberData(nameof(MasqueradeCases))]
    public void The_masquerade_device_test_compares_as_the_names_do(string? masq, string outDev, bool numbered, bool expected)
    {
        var t = new ConnTuple(IpFamily.V4, 6, 0x0A000102, 0x5DB8D822, 40000, 80);
        var ct = new ConnEntry(t, t) { MasqueradeDevice = masq };
        // Another string object with the same name: the plan's device is the route's, not the one MASQUERADE stored.
        string device = new(outDev.AsSpan());
        byte number = numbered ? DeviceNames.Number(outDev) : (byte)0;
        ct.MasqueradeDeviceIsNoneOr(device, number).ShouldBe(expected);
        bool byName = ct.MasqueradeDevice is not { } m || string.Equals(m, outDev, StringComparison.Ordinal);
        byName.ShouldBe(expected);
    }
}
