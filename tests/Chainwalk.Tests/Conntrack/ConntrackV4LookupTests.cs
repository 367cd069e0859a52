using Chainwalk.Conntrack;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// The IPv4 TCP/UDP lookup by fields (<see cref="ConntrackTable.TryFindV4"/>, what nf_conntrack_in uses for a packet in
/// the default zone) against the tuple lookup (<see cref="ConntrackTable.TryFind"/>): the same entry, direction and
/// removal of an expired entry, with the hash computed here or handed over from the prefetch.
/// </summary>
public class ConntrackV4LookupTests
{
    private const uint Client = 0x0A000001, Server = 0x0A000002, Nat = 0xC0A80001;

    /// <summary>A table holding: a TCP and a UDP connection with the same addresses and ports, a source-NATed one, one in
    /// zone 5, an expired one, and an IPv6 connection whose addresses' low 32 bits are the IPv4 client's and server's.</summary>
    private static ConntrackTable Table()
    {
        var table = new ConntrackTable();
        Add(table, new ConnTuple(IpFamily.V4, IpProtocol.Tcp, Client, Server, 1000, 80), null, 100, 0);
        Add(table, new ConnTuple(IpFamily.V4, IpProtocol.Udp, Client, Server, 1000, 80), null, 100, 0);
        var o = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, Client, Server, 2000, 443);
        Add(table, o, new ConnTuple(IpFamily.V4, IpProtocol.Tcp, Server, Nat, 443, 61000), 100, 0);
        Add(table, new ConnTuple(IpFamily.V4, IpProtocol.Tcp, Client, Server, 3000, 80), null, 100, 5);
        Add(table, new ConnTuple(IpFamily.V4, IpProtocol.Udp, Client, Server, 4000, 53), null, 5, 0);
        UInt128 v6Client = ((UInt128)0x20010db8_00000000UL << 64) | Client, v6Server = ((UInt128)0x20010db8_00000000UL << 64) | Server;
        Add(table, new ConnTuple(IpFamily.V6, IpProtocol.Tcp, v6Client, v6Server, 5000, 80), null, 100, 0);
        return table;
    }

    private static void Add(ConntrackTable table, ConnTuple original, ConnTuple? reply, double timeout, ushort zone)
    {
        original.TryInvert(out ConnTuple inverse).ShouldBeTrue();
        var ct = new ConnEntry(original, reply ?? inverse) { Timeout = timeout, Zone = zone };
        table.TryInsert(ct, 0).ShouldBeTrue();
    }

    // protocol, source, destination, source port, destination port, expected: found (and direction) at time 10
    public static TheoryData<byte, uint, uint, ushort, ushort, string> Probes => new()
    {
        { IpProtocol.Tcp, Client, Server, 1000, 80, "original" },
        { IpProtocol.Tcp, Server, Client, 80, 1000, "reply" },
        { IpProtocol.Udp, Client, Server, 1000, 80, "original" },
        { IpProtocol.Udp, Server, Client, 80, 1000, "reply" },
        { IpProtocol.Tcp, Client, Server, 2000, 443, "original" },
        { IpProtocol.Tcp, Server, Nat, 443, 61000, "reply" },       // the NATed reply tuple
        { IpProtocol.Tcp, Server, Client, 443, 2000, "none" },      // the un-NATed inverse is not a key
        { IpProtocol.Tcp, Client, Server, 3000, 80, "none" },       // zone 5 only
        { IpProtocol.Udp, Client, Server, 4000, 53, "none" },       // expired: removed by the lookup
        { IpProtocol.Tcp, Client, Server, 5000, 80, "none" },       // only the IPv6 connection has these low bits
        { IpProtocol.Tcp, Client, Server, 1000, 81, "none" },
        { IpProtocol.Udp, Client, Server, 2000, 443, "none" },      // other protocol
    };

    [Theory]
    [MemberData(nameof(Probes))]
    public void ByFieldsAsByTuple(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort, string expected)
    {
        var tuple = new ConnTuple(IpFamily.V4, protocol, source, destination, sourcePort, destinationPort);
        ConntrackTable reference = Table();
        bool refFound = reference.TryFind(tuple, 0, 10, out ConnEntry refEntry, out ConnDirection refDir);
        string got = refFound ? (refDir == ConnDirection.Original ? "original" : "reply") : "none";
        got.ShouldBe(expected);

        foreach (bool hinted in new[] { false, true })
        {
            ConntrackTable table = Table();
            int hash = -1;
            if (hinted)
            {
                long token = table.PrefetchV4(protocol, source, destination, sourcePort, destinationPort);
                // The prefetch by fields hashes as the tuple's prefetch does (the lookup trusts that hash).
                token.ShouldBe(table.Prefetch(tuple, 0));
                if (token >= 0) hash = (int)(token >> 32);
            }
            bool found = table.TryFindV4(protocol, source, destination, sourcePort, destinationPort, hash, 10, out ConnEntry entry, out ConnDirection dir);
            found.ShouldBe(refFound);
            table.Count.ShouldBe(reference.Count);
            if (!found) continue;
            dir.ShouldBe(refDir);
            entry.Original.ShouldBe(refEntry.Original);
            entry.Reply.ShouldBe(refEntry.Reply);
        }
    }
}
