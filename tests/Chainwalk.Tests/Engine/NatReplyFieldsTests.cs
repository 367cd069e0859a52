using Chainwalk.Conntrack;
using Chainwalk.Net;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The binding's reply tuple read and written in the entry's fields (<see cref="ConnEntry.TryReplyInverse"/>,
/// <see cref="ConnEntry.TrySetReplyInverseOf"/>, used by NatCore.SetupInfo) gives what building the reply tuple and
/// inverting it gave (<see cref="ConnTuple.TryInvert"/>): IPv4 TCP/UDP from the fields, ICMP (inverted by type), IPv6 and
/// an answerless ICMP type the old way.
/// </summary>
public class NatReplyFieldsTests
{
    public static TheoryData<string, ConnTuple, ConnTuple> Cases => new()
    {
        { "v4 tcp", V4(6, "10.0.1.10", "10.96.0.1", 40000, 443), V4(6, "10.244.1.5", "10.0.1.10", 8443, 40000) },
        { "v4 udp", V4(17, "10.0.1.10", "10.96.0.10", 5353, 53), V4(17, "10.96.0.10", "10.0.1.10", 53, 5353) },
        { "v4 sctp", V4(132, "10.0.1.10", "10.0.2.2", 1, 2), V4(132, "10.0.2.2", "192.0.2.1", 2, 61000) },
        { "v4 icmp echo", V4(1, "10.0.1.10", "8.8.8.8", 77, 8 << 8), V4(1, "8.8.8.8", "10.0.1.10", 77, 0) },
        { "v4 icmp timestamp", V4(1, "10.0.1.10", "8.8.8.8", 5, 13 << 8), V4(1, "8.8.8.8", "10.0.1.10", 5, 14 << 8) },
        { "v4 gre (no ports)", V4(47, "10.0.1.10", "10.0.2.2", 0, 0), V4(47, "10.0.2.2", "10.0.1.10", 0, 0) },
        { "v6 tcp", V6(6, "2001:db8::1", "2001:db8::2", 40000, 80), V6(6, "2001:db8::2", "2001:db8::1", 80, 40000) },
        { "v6 icmpv6 echo", V6(58, "2001:db8::1", "2001:db8::2", 9, 128 << 8), V6(58, "2001:db8::2", "2001:db8::1", 9, 129 << 8) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReplyInverseAsTheTupleInverts(string name, ConnTuple original, ConnTuple reply)
    {
        var ct = new ConnEntry(original, reply);
        bool expectedOk = reply.TryInvert(out ConnTuple expected);
        ct.TryReplyInverse(out ConnTuple got).ShouldBe(expectedOk, name);
        got.ShouldBe(expected, name);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SetReplyInverseAsTheTupleInverts(string name, ConnTuple original, ConnTuple chosen)
    {
        // The chosen tuple (a packet's view in the original direction) becomes the reply's inverse.
        var ct = new ConnEntry(original, original);
        chosen.TryInvert(out ConnTuple expected).ShouldBeTrue(name);
        ct.TrySetReplyInverseOf(chosen).ShouldBeTrue(name);
        ct.Reply.ShouldBe(expected, name);
        ct.Original.ShouldBe(original, name);
    }

    [Fact]
    public void AnswerlessIcmpTypeHasNoInverseAndChangesNothing()
    {
        // ICMP type 3 (an error) has no answering type: no inverse, as nf_ct_invert_tuple refuses it.
        ConnTuple original = V4(1, "10.0.1.10", "8.8.8.8", 5, 8 << 8);
        ConnTuple reply = V4(1, "8.8.8.8", "10.0.1.10", 5, 0);
        var ct = new ConnEntry(original, reply);
        ct.TrySetReplyInverseOf(V4(1, "10.0.1.10", "8.8.8.8", 5, 3 << 8)).ShouldBeFalse();
        ct.Reply.ShouldBe(reply);
        var odd = new ConnEntry(original, V4(1, "8.8.8.8", "10.0.1.10", 5, 3 << 8));
        odd.TryReplyInverse(out _).ShouldBeFalse();
    }

    [Fact]
    public void DeviceNumbersByContentNotByObject()
    {
        // The last-hit memo compares name objects; equal names in other objects still get the same number, and
        // alternating names keep theirs.
        string a = "cwtest" + "eth0".ToUpperInvariant();
        string b = new(a.AsSpan());
        string c = "cwtest" + "eth1".ToUpperInvariant();
        byte na = DeviceNames.Number(a);
        na.ShouldNotBe((byte)0);
        DeviceNames.Number(b).ShouldBe(na);
        byte nc = DeviceNames.Number(c);
        nc.ShouldNotBe(na);
        for (int i = 0; i < 4; i++)
        {
            DeviceNames.Number(i % 2 == 0 ? a : c).ShouldBe(i % 2 == 0 ? na : nc);
            DeviceNames.Number(b).ShouldBe(na);
        }
        DeviceNames.Name(na).ShouldBe(a);
        DeviceNames.Name(nc).ShouldBe(c);
    }

    private static UInt128 Addr(string text)
    {
        UInt128 a = 0;
        foreach (byte b in System.Net.IPAddress.Parse(text).GetAddressBytes()) a = (a << 8) | b;
        return a;
    }

    private static ConnTuple V4(byte proto, string src, string dst, int sport, int dport) =>
        new(IpFamily.V4, proto, Addr(src), Addr(dst), (ushort)sport, (ushort)dport);

    private static ConnTuple V6(byte proto, string src, string dst, int sport, int dport) =>
        new(IpFamily.V6, proto, Addr(src), Addr(dst), (ushort)sport, (ushort)dport);
}
