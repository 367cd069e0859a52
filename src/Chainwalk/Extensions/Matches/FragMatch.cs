using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m frag</c> (struct ip6t_frag).</summary>
public sealed class FragData : ExtensionData
{
    public uint IdMin;
    public uint IdMax = uint.MaxValue;
    public bool InvIds;

    /// <summary><c>--fraglen</c> (the kernel ignores it).</summary>
    public bool HasLength;
    public uint HeaderLength;
    public bool InvLength;

    public bool Reserved;
    public bool First;
    public bool More;
    public bool Last;
}

/// <summary><c>-m frag</c> (libip6t_frag.c, ip6t_frag.c): the IPv6 fragment header; any protocol.</summary>
public sealed class FragMatch : XtExtension<FragData>
{
    private const int Id = 0, Len = 1, Res = 2, First = 3, More = 4, Last = 5;

    public override string Name => "frag";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("fragid", Id, OptionArg.Required, OptFlags.Invert),
        new("fraglen", Len, OptionArg.Required, OptFlags.Invert),
        new("fragres", Res, OptionArg.None),
        new("fragfirst", First, OptionArg.None),
        new("fragmore", More, OptionArg.None) { Excludes = 1UL << Last },
        new("fraglast", Last, OptionArg.None) { Excludes = 1UL << More },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, FragData d)
    {
        switch (option.Id)
        {
            case Id:
                {
                    var (a, b, n) = XtParse.UIntRange(argument!, uint.MaxValue, Name, "fragid");
                    d.IdMin = (uint)a;
                    d.IdMax = n == 1 ? (uint)a : (uint)b;
                    if (invert) d.InvIds = true;
                    break;
                }
            case Len:
                d.HeaderLength = (uint)XtParse.UIntOption(argument!, 0, uint.MaxValue, Name, "fraglen");
                d.HasLength = true;
                if (invert) d.InvLength = true;
                break;
            case Res:
                d.Reserved = true;
                break;
            case First:
                d.First = true;
                break;
            case More:
                d.More = true;
                break;
            default:
                d.Last = true;
                break;
        }
    }

    protected override void Save(StringBuilder sb, FragData d, IpFamily family)
    {
        if (!(d.IdMin == 0 && d.IdMax == uint.MaxValue))
        {
            sb.Append(d.InvIds ? " !" : string.Empty).Append(" --fragid ").Append(XtParse.Dec(d.IdMin));
            if (d.IdMin != d.IdMax) sb.Append(':').Append(XtParse.Dec(d.IdMax));
        }
        if (d.HasLength) sb.Append(d.InvLength ? " !" : string.Empty).Append(" --fraglen ").Append(XtParse.Dec(d.HeaderLength));
        if (d.Reserved) sb.Append(" --fragres");
        if (d.First) sb.Append(" --fragfirst");
        if (d.More) sb.Append(" --fragmore");
        if (d.Last) sb.Append(" --fraglast");
    }

    protected override void Print(StringBuilder sb, FragData d, IpFamily family, bool numeric)
    {
        sb.Append(" frag ");
        if (d.IdMin != 0 || d.IdMax != uint.MaxValue || d.InvIds)
        {
            string inv = d.InvIds ? "!" : string.Empty;
            if (d.IdMin == d.IdMax) sb.Append("id:").Append(inv).Append(XtParse.Dec(d.IdMin));
            else sb.Append("ids:").Append(inv).Append(XtParse.Dec(d.IdMin)).Append(':').Append(XtParse.Dec(d.IdMax));
        }
        if (d.HasLength) sb.Append(" length:").Append(d.InvLength ? "!" : string.Empty).Append(XtParse.Dec(d.HeaderLength));
        if (d.Reserved) sb.Append(" reserved");
        if (d.First) sb.Append(" first");
        if (d.More) sb.Append(" more");
        if (d.Last) sb.Append(" last");
    }

    /// <summary>
    /// Evaluates the match (ip6t_frag.c): finds the fragment header (a non-first fragment's too); none fails, a
    /// chain that does not fit drops the packet. The kernel does not compare --fraglen.
    /// </summary>
    protected override bool Match(PacketContext ctx, FragData d)
    {
        Packet p = ctx.Packet;
        if (!HeaderReads.FindIpv6Header(p, IpProtocol.Fragment, out int ptr, out bool bad))
        {
            ctx.HotDrop = bad;
            return false;
        }
        if (!HeaderReads.TryRead(p, ptr, 8, out ReadOnlySpan<byte> fh)) return HeaderReads.Drop(ctx);
        uint id = HeaderReads.U32(fh, 4);
        int off = HeaderReads.U16(fh, 2);
        return (id >= d.IdMin && id <= d.IdMax) != d.InvIds
            && !(d.Reserved && (fh[1] != 0 || (off & 0x6) != 0))
            && !(d.First && (off & ~0x7) != 0)
            && !(d.More && (off & 1) == 0)
            && !(d.Last && (off & 1) != 0);
    }
}
