using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m mh</c> (struct ip6t_mh).</summary>
public sealed class MhData : ExtensionData
{
    public byte TypeMin;
    public byte TypeMax = 0xFF;
    public bool Invert;
}

/// <summary><c>-m mh --mh-type</c> (libip6t_mh.c, ip6t_mh.c): IPv6 mobility header type or range; needs <c>-p mh</c> (135).</summary>
public sealed class MhMatch : XtExtension<MhData>
{
    public override string Name => "mh";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override ushort RequiredProtocol => Protocols.Mh;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("mh-type", 0, OptionArg.Required, OptFlags.Invert),
    ];

    private static readonly (string Name, byte Type)[] Names =
    [
        ("binding-refresh-request", 0), ("brr", 0), ("home-test-init", 1), ("hoti", 1),
        ("careof-test-init", 2), ("coti", 2), ("home-test", 3), ("hot", 3), ("careof-test", 4), ("cot", 4),
        ("binding-update", 5), ("bu", 5), ("binding-acknowledgement", 6), ("ba", 6), ("binding-error", 7), ("be", 7),
    ];

    private static byte NameToType(string name)
    {
        int match = -1;
        for (int i = 0; i < Names.Length; i++)
        {
            string n = Names[i].Name;
            if (n.Length < name.Length || !n.AsSpan(0, name.Length).Equals(name, StringComparison.OrdinalIgnoreCase)) continue;
            if (match < 0 || n.Length == name.Length) match = i;
        }
        if (match >= 0) return Names[match].Type;
        if (!XtParse.TryUInt(name, 0, 255, out ulong v)) throw XtablesException.Param($"Invalid MH type `{name}'");
        return (byte)v;
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, MhData d)
    {
        string text = argument!;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            d.TypeMin = d.TypeMax = NameToType(text);
        }
        else
        {
            string a = text[..colon], b = text[(colon + 1)..];
            d.TypeMin = a.Length > 0 ? NameToType(a) : (byte)0;
            d.TypeMax = b.Length > 0 ? NameToType(b) : (byte)0xFF;
            if (d.TypeMin > d.TypeMax) throw ctx.Error("Invalid MH type range (min > max)");
        }
        if (invert) d.Invert = true;
    }

    protected override void Save(StringBuilder sb, MhData d, IpFamily family)
    {
        if (d.TypeMin == 0 && d.TypeMax == 0xFF) return;
        if (d.Invert) sb.Append(" !");
        sb.Append(" --mh-type ").Append(XtParse.Dec(d.TypeMin));
        if (d.TypeMin != d.TypeMax) sb.Append(':').Append(XtParse.Dec(d.TypeMax));
    }

    private static string TypeText(byte type, bool numeric)
    {
        if (!numeric)
        {
            foreach (var (name, t) in Names)
            {
                if (t == type) return name;
            }
        }
        return XtParse.Dec(type);
    }

    protected override void Print(StringBuilder sb, MhData d, IpFamily family, bool numeric)
    {
        sb.Append(" mh");
        if (d.TypeMin == 0 && d.TypeMax == 0xFF && !d.Invert) return;
        sb.Append(' ').Append(d.Invert ? "!" : string.Empty).Append(TypeText(d.TypeMin, numeric));
        if (d.TypeMin != d.TypeMax) sb.Append(':').Append(TypeText(d.TypeMax, numeric));
    }

    /// <summary>
    /// Evaluates the match (ip6t_mh.c): non-first fragments never match; a header shorter than 6 bytes, or one
    /// whose payload-proto field is not 59 (no next header), drops the packet.
    /// </summary>
    protected override bool Match(PacketContext ctx, MhData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, 6, out ReadOnlySpan<byte> mh)) return HeaderReads.Drop(ctx);
        if (mh[0] != IpProtocol.NoNextHeader) return HeaderReads.Drop(ctx);
        return (mh[2] >= d.TypeMin && mh[2] <= d.TypeMax) != d.Invert;
    }
}
