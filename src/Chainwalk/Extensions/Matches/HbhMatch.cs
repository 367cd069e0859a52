using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m hbh</c> and <c>-m dst</c> (struct ip6t_opts).</summary>
public class Ip6OptsData : ExtensionData
{
    public const int MaxOptions = 16;

    public bool HasLength;
    public uint HeaderLength;
    public bool InvLength;

    public bool HasOptions;

    /// <summary>Each entry: option type in the high byte, length in the low byte (0xFF = any length).</summary>
    public ushort[] Opts = new ushort[MaxOptions];

    public int OptCount;

    public override ExtensionData Clone()
    {
        var c = (Ip6OptsData)MemberwiseClone();
        c.Opts = (ushort[])Opts.Clone();
        return c;
    }

    /// <summary>parse_options of libip6t_hbh/libip6t_dst: "TYPE[:LEN][,TYPE[:LEN]...]", up to 16.</summary>
    internal void ParseOptions(string text, string ext, string pad0Message)
    {
        string[] items = text.Split(',');
        int i = 0, item = 0;
        for (; item < items.Length && i < MaxOptions; item++, i++)
        {
            string cp = items[item];
            string? range = null;
            int colon = cp.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                if (i == MaxOptions - 1) throw XtablesException.Param("too many ports specified");
                range = cp[(colon + 1)..];
                cp = cp[..colon];
            }
            Opts[i] = (ushort)((ParseNumber(cp, "opt", ext) & 0xFF) << 8);
            if (range is not null)
            {
                if (Opts[i] == 0) throw XtablesException.Param(pad0Message);
                Opts[i] |= (ushort)(ParseNumber(range, "length", ext) & 0xFF);
            }
            else
            {
                Opts[i] |= 0xFF;
            }
        }
        if (item < items.Length) throw XtablesException.Param("too many addresses specified");
        OptCount = i;
        HasOptions = true;
    }

    private static ulong ParseNumber(string text, string what, string ext)
    {
        int used = NumberParsing.ParseCPrefix(text, 0, out ulong v, out bool overflow);
        if (used == 0) throw XtablesException.Param($"{ext}: no valid digits in {what} `{text}'");
        if (overflow) throw XtablesException.Param($"{what} `{text}' specified too big: would overflow");
        if (text.Length > 0 && used != text.Length) throw XtablesException.Param($"{ext}: error parsing {what} `{text}'");
        return v;
    }

    internal void AppendOptions(StringBuilder sb)
    {
        for (int i = 0; i < OptCount; i++)
        {
            sb.Append(i == 0 ? ' ' : ',').Append(XtParse.Dec((ulong)(Opts[i] >> 8)));
            if ((Opts[i] & 0xFF) != 0xFF) sb.Append(':').Append(XtParse.Dec((ulong)(Opts[i] & 0xFF)));
        }
    }

    internal void Save(StringBuilder sb, string prefix)
    {
        if (HasLength) sb.Append(InvLength ? " !" : string.Empty).Append(" --").Append(prefix).Append("-len ").Append(XtParse.Dec(HeaderLength));
        if (HasOptions) sb.Append(" --").Append(prefix).Append("-opts");
        AppendOptions(sb);
    }

    internal void Print(StringBuilder sb, string name)
    {
        sb.Append(' ').Append(name);
        if (HasLength) sb.Append(" length:").Append(InvLength ? "!" : string.Empty).Append(XtParse.Dec(HeaderLength));
        if (HasOptions) sb.Append(" opts");
        AppendOptions(sb);
    }
}

/// <summary>Options of <c>-m hbh</c>.</summary>
public sealed class HbhData : Ip6OptsData
{
}

/// <summary><c>-m hbh</c> (libip6t_hbh.c, ip6t_hbh.c): the IPv6 hop-by-hop options header.</summary>
public sealed class HbhMatch : XtExtension<HbhData>
{
    private const int Len = 0, Opts = 1;

    public override string Name => "hbh";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("hbh-len", Len, OptionArg.Required, OptFlags.Invert),
        new("hbh-opts", Opts, OptionArg.Required),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, HbhData d)
    {
        if (option.Id == Len)
        {
            d.HeaderLength = (uint)XtParse.UIntOption(argument!, 0, uint.MaxValue, Name, "hbh-len");
            d.HasLength = true;
            if (invert) d.InvLength = true;
        }
        else
        {
            d.ParseOptions(argument!, Name, "PAD0 has not got length");
        }
    }

    protected override void Save(StringBuilder sb, HbhData d, IpFamily family) => d.Save(sb, "hbh");

    protected override void Print(StringBuilder sb, HbhData d, IpFamily family, bool numeric) => d.Print(sb, "hbh");

    /// <summary>
    /// ip6t_hbh.c for both hop-by-hop (0) and destination options (60): finds the header; a header longer than
    /// what is left of the packet fails; --*-len compares the whole header's length in bytes; --*-opts wants the
    /// listed options in that order from the first one (type, and length unless given as type only).
    /// </summary>
    internal static bool MatchOptions(PacketContext ctx, Ip6OptsData d, byte header)
    {
        Packet p = ctx.Packet;
        if (!HeaderReads.FindIpv6Header(p, header, out int ptr, out bool bad))
        {
            ctx.HotDrop = bad;
            return false;
        }
        if (!HeaderReads.TryRead(p, ptr, 2, out ReadOnlySpan<byte> oh)) return HeaderReads.Drop(ctx);
        int hdrlen = (oh[1] + 1) << 3;
        int len = p.Bytes.Length;
        if (len - ptr < hdrlen) return false;
        bool ret = !d.HasLength || (d.HeaderLength == (uint)hdrlen) != d.InvLength;
        ptr += 2;
        hdrlen -= 2;
        if (!d.HasOptions) return ret;
        int temp;
        for (temp = 0; temp < d.OptCount; temp++)
        {
            if (hdrlen < 1 || ptr >= len) break;
            byte type = p.Bytes[ptr];
            if (type != d.Opts[temp] >> 8) return false;
            int optlen;
            if (type != 0)
            {
                if (hdrlen < 2 || ptr + 1 >= len) break;
                byte olen = p.Bytes[ptr + 1];
                int spec = d.Opts[temp] & 0xFF;
                if (spec != 0xFF && spec != olen) return false;
                optlen = olen + 2;
            }
            else
            {
                optlen = 1; // Pad1
            }
            if ((ptr > len - optlen || hdrlen < optlen) && temp < d.OptCount - 1) break;
            ptr += optlen;
            hdrlen -= optlen;
        }
        return temp == d.OptCount && ret;
    }

    /// <summary>Evaluates the match on the hop-by-hop header.</summary>
    protected override bool Match(PacketContext ctx, HbhData d) => MatchOptions(ctx, d, IpProtocol.HopByHop);
}
