using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary><c>-m eui64</c> has no options.</summary>
public sealed class Eui64Data : ExtensionData
{
}

/// <summary>
/// <c>-m eui64</c> (libip6t_eui64.c, ip6t_eui64.c): the source address's interface id is the EUI-64 of the
/// source MAC. No options, nothing printed; the kernel allows it only in PREROUTING, INPUT and FORWARD.
/// </summary>
public sealed class Eui64Match : XtExtension<Eui64Data>
{
    public override string Name => "eui64";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Input | HookMask.Forward;

    public override IReadOnlyList<XtOption> Options { get; } = [];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, Eui64Data d)
    {
    }

    protected override void Save(StringBuilder sb, Eui64Data d, IpFamily family)
    {
    }

    protected override void Print(StringBuilder sb, Eui64Data d, IpFamily family, bool numeric)
    {
    }

    /// <summary>
    /// Evaluates the match (ip6t_eui64.c): the source address's interface identifier must be the EUI-64 made from
    /// the Ethernet source address (ff:fe in the middle, the universal/local bit flipped). Without an Ethernet
    /// header there is nothing to compare: no match, and a non-first fragment is then dropped, as the kernel's
    /// test reads. A received packet whose sender MAC the caller did not give counts as having no Ethernet header.
    /// Recorded on Linux 6.18: 2001:db8:1:0:211:22ff:fe33:4455 from 00:11:22:33:44:55 matches, from …:56 not.
    /// </summary>
    protected override bool Match(PacketContext ctx, Eui64Data d)
    {
        Packet p = ctx.Packet;
        if (ctx.Skb.SourceMac is not ulong mac)
        {
            if (HeaderReads.FragOff(p) != 0) ctx.HotDrop = true;
            return false;
        }
        ulong eui = ((mac >> 24) << 40) | (0xfffeUL << 24) | (mac & 0xffffff);
        eui ^= 0x02UL << 56;
        return (ulong)(p.Source & ulong.MaxValue) == eui;
    }
}
