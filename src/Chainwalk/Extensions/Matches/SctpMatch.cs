using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>How <c>--chunk-types</c> combines its chunks (SCTP_CHUNK_MATCH_*).</summary>
public enum SctpChunkMatch : byte
{
    Any = 0x01,
    All = 0x02,
    Only = 0x04,
}

/// <summary>One chunk-flag condition of <c>-m sctp</c> (struct xt_sctp_flag_info).</summary>
public struct SctpFlagInfo
{
    /// <summary>As libxt_sctp 1.8.9 stores it: the index in its chunk name table, not the chunk type.</summary>
    public byte ChunkType;
    public byte Flag;
    public byte FlagMask;
}

/// <summary>Options of <c>-m sctp</c> (struct xt_sctp_info).</summary>
public sealed class SctpData : ExtensionData
{
    public const uint SrcPorts = 0x01, DestPorts = 0x02, ChunkTypes = 0x04;

    public ushort SportMin;
    public ushort SportMax;
    public ushort DportMin;
    public ushort DportMax;

    /// <summary>Bit n set = chunk type n is listed.</summary>
    public uint[] ChunkMap = new uint[8];

    public SctpChunkMatch ChunkMatchType;

    public SctpFlagInfo[] FlagInfo = new SctpFlagInfo[4];

    public int FlagCount;

    public uint Flags;
    public uint InvFlags;

    public bool ChunkSet(int n) => (ChunkMap[n / 32] & (1u << (n % 32))) != 0;

    public override ExtensionData Clone()
    {
        var c = (SctpData)MemberwiseClone();
        c.ChunkMap = (uint[])ChunkMap.Clone();
        c.FlagInfo = (SctpFlagInfo[])FlagInfo.Clone();
        return c;
    }
}

/// <summary><c>-m sctp</c> (libxt_sctp.c, xt_sctp.c): ports and <c>--chunk-types TYPE CHUNKS</c>; needs <c>-p sctp</c>.</summary>
public sealed class SctpMatch : XtExtension<SctpData>
{
    private const int Sport = 0, Dport = 1, Chunks = 2;

    public override string Name => "sctp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override ushort RequiredProtocol => Protocols.Sctp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("source-port", Sport, OptionArg.Required, OptFlags.Manual),
        new("sport", Sport, OptionArg.Required, OptFlags.Manual),
        new("destination-port", Dport, OptionArg.Required, OptFlags.Manual),
        new("dport", Dport, OptionArg.Required, OptFlags.Manual),
        new("chunk-types", Chunks, OptionArg.Required, OptFlags.Manual),
    ];

    private static readonly (string Name, byte Type, string ValidFlags)[] ChunkNames =
    [
        ("DATA", 0, "----IUBE"), ("INIT", 1, "--------"), ("INIT_ACK", 2, "--------"), ("SACK", 3, "--------"),
        ("HEARTBEAT", 4, "--------"), ("HEARTBEAT_ACK", 5, "--------"), ("ABORT", 6, "-------T"),
        ("SHUTDOWN", 7, "--------"), ("SHUTDOWN_ACK", 8, "--------"), ("ERROR", 9, "--------"),
        ("COOKIE_ECHO", 10, "--------"), ("COOKIE_ACK", 11, "--------"), ("ECN_ECNE", 12, "--------"),
        ("ECN_CWR", 13, "--------"), ("SHUTDOWN_COMPLETE", 14, "-------T"), ("I_DATA", 64, "----IUBE"),
        ("RE_CONFIG", 130, "--------"), ("PAD", 132, "--------"), ("ASCONF", 193, "--------"),
        ("ASCONF_ACK", 128, "--------"), ("FORWARD_TSN", 192, "--------"), ("I_FORWARD_TSN", 194, "--------"),
    ];

    protected override void Init(ParseContext ctx, SctpData data)
    {
        for (int i = 0; i < data.FlagInfo.Length; i++) data.FlagInfo[i].ChunkType = 0xFF;
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SctpData d)
    {
        switch (option.Id)
        {
            case Sport:
                if ((d.Flags & SctpData.SrcPorts) != 0) throw ctx.Error("Only one `--source-port' allowed");
                d.Flags |= SctpData.SrcPorts;
                (d.SportMin, d.SportMax) = ParsePorts(argument!, ctx.Names);
                if (invert) d.InvFlags |= SctpData.SrcPorts;
                break;
            case Dport:
                if ((d.Flags & SctpData.DestPorts) != 0) throw ctx.Error("Only one `--destination-port' allowed");
                d.Flags |= SctpData.DestPorts;
                (d.DportMin, d.DportMax) = ParsePorts(argument!, ctx.Names);
                if (invert) d.InvFlags |= SctpData.DestPorts;
                break;
            default:
                {
                    if ((d.Flags & SctpData.ChunkTypes) != 0) throw ctx.Error("Only one `--chunk-types' allowed");
                    string? chunks = ctx.PeekArgument();
                    if (chunks is null || chunks.StartsWith('-') || chunks.StartsWith('!')) throw ctx.Error("--chunk-types requires two args");
                    d.Flags |= SctpData.ChunkTypes;
                    ParseChunks(d, argument!, chunks);
                    if (invert) d.InvFlags |= SctpData.ChunkTypes;
                    ctx.SkipArgument();
                    break;
                }
        }
    }

    private static (ushort, ushort) ParsePorts(string text, NameDb names)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            ushort p = XtParse.Port(text, "sctp", names);
            return (p, p);
        }
        string a = text[..colon], b = text[(colon + 1)..];
        ushort min = a.Length > 0 ? XtParse.Port(a, "sctp", names) : (ushort)0;
        ushort max = b.Length > 0 ? XtParse.Port(b, "sctp", names) : ushort.MaxValue;
        if (min > max) throw XtablesException.Param("invalid portrange (min > max)");
        return (min, max);
    }

    private static void ParseChunks(SctpData d, string matchType, string chunks)
    {
        if (matchType.Equals("ANY", StringComparison.OrdinalIgnoreCase)) d.ChunkMatchType = SctpChunkMatch.Any;
        else if (matchType.Equals("ALL", StringComparison.OrdinalIgnoreCase)) d.ChunkMatchType = SctpChunkMatch.All;
        else if (matchType.Equals("ONLY", StringComparison.OrdinalIgnoreCase)) d.ChunkMatchType = SctpChunkMatch.Only;
        else throw XtablesException.Param("Match type has to be one of \"ALL\", \"ANY\" or \"ONLY\"");

        Array.Clear(d.ChunkMap);
        if (chunks.Equals("ALL", StringComparison.OrdinalIgnoreCase))
        {
            Array.Fill(d.ChunkMap, uint.MaxValue);
            return;
        }
        if (chunks.Equals("NONE", StringComparison.OrdinalIgnoreCase)) return;
        foreach (string token in chunks.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = token;
            string? flags = null;
            int colon = token.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                name = token[..colon];
                flags = token[(colon + 1)..];
            }
            int i = Array.FindIndex(ChunkNames, c => c.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (i < 0) throw XtablesException.Param($"Unknown sctp chunk `{name}'");
            byte type = ChunkNames[i].Type;
            d.ChunkMap[type / 32] |= 1u << (type % 32);
            if (flags is null) continue;
            foreach (char ch in flags)
            {
                int p = ChunkNames[i].ValidFlags.IndexOf(char.ToUpperInvariant(ch), StringComparison.Ordinal);
                if (p < 0) throw XtablesException.Param($"Invalid flags for chunk type {i}");
                SaveFlag(d, (byte)i, 7 - p, char.IsUpper(ch));
            }
        }
    }

    private static void SaveFlag(SctpData d, byte chunk, int bit, bool set)
    {
        for (int i = 0; i < d.FlagCount; i++)
        {
            if (d.FlagInfo[i].ChunkType != chunk) continue;
            d.FlagInfo[i].FlagMask |= (byte)(1 << bit);
            if (set) d.FlagInfo[i].Flag |= (byte)(1 << bit);
            return;
        }
        if (d.FlagCount == d.FlagInfo.Length)
        {
            throw XtablesException.Param("Number of chunk types with flags exceeds currently allowed limit. Increasing this limit involves changing IPT_NUM_SCTP_FLAGS and recompiling both the kernel space and user space modules");
        }
        ref SctpFlagInfo f = ref d.FlagInfo[d.FlagCount];
        f.ChunkType = chunk;
        f.FlagMask |= (byte)(1 << bit);
        if (set) f.Flag |= (byte)(1 << bit);
        d.FlagCount++;
    }

    protected override string? CheckEntry(RuleCheckContext ctx, SctpData d)
    {
        if ((d.InvFlags & ~d.Flags) != 0) return RulesetEditor.InvalidArgument;
        return null;
    }

    private static void AppendChunks(StringBuilder sb, SctpData d, bool numeric)
    {
        sb.Append(d.ChunkMatchType switch
        {
            SctpChunkMatch.Any => " any",
            SctpChunkMatch.All => " all",
            SctpChunkMatch.Only => " only",
            _ => "Never reach here\n",
        });
        if (d.ChunkMap.All(w => w == 0))
        {
            sb.Append(" NONE");
            return;
        }
        if (d.ChunkMap.All(w => w == uint.MaxValue))
        {
            sb.Append(" ALL");
            return;
        }
        bool first = true;
        for (int i = 0; i < 256; i++)
        {
            if (!d.ChunkSet(i)) continue;
            sb.Append(first ? ' ' : ',');
            first = false;
            if (numeric)
            {
                sb.Append("0x").Append(i.ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                foreach (var c in ChunkNames)
                {
                    if (c.Type == i) sb.Append(c.Name);
                }
            }
            for (int j = 0; j < d.FlagCount; j++)
            {
                if (d.FlagInfo[j].ChunkType != i) continue;
                byte mask = d.FlagInfo[j].FlagMask, flag = d.FlagInfo[j].Flag;
                if (mask != 0) sb.Append(':');
                for (int b = 7; b >= 0; b--)
                {
                    if ((mask & (1 << b)) == 0) continue;
                    char fc = ChunkNames[i].ValidFlags[7 - b];
                    sb.Append((flag & (1 << b)) != 0 ? fc : char.ToLowerInvariant(fc));
                }
            }
        }
    }

    private static void SavePorts(StringBuilder sb, string name, ushort min, ushort max, bool inv)
    {
        if (inv) sb.Append(" !");
        sb.Append(" --").Append(name).Append(' ').Append(XtParse.Dec(min));
        if (min != max) sb.Append(':').Append(XtParse.Dec(max));
    }

    protected override void Save(StringBuilder sb, SctpData d, IpFamily family)
    {
        if ((d.Flags & SctpData.SrcPorts) != 0) SavePorts(sb, "sport", d.SportMin, d.SportMax, (d.InvFlags & SctpData.SrcPorts) != 0);
        if ((d.Flags & SctpData.DestPorts) != 0) SavePorts(sb, "dport", d.DportMin, d.DportMax, (d.InvFlags & SctpData.DestPorts) != 0);
        if ((d.Flags & SctpData.ChunkTypes) != 0)
        {
            if ((d.InvFlags & SctpData.ChunkTypes) != 0) sb.Append(" !");
            sb.Append(" --chunk-types");
            AppendChunks(sb, d, false);
        }
    }

    protected override void Print(StringBuilder sb, SctpData d, IpFamily family, bool numeric)
    {
        sb.Append(" sctp");
        if ((d.Flags & SctpData.SrcPorts) != 0)
            XtParse.AppendPortsListed(sb, "spt", d.SportMin, d.SportMax, (d.InvFlags & SctpData.SrcPorts) != 0, numeric, "sctp");
        if ((d.Flags & SctpData.DestPorts) != 0)
            XtParse.AppendPortsListed(sb, "dpt", d.DportMin, d.DportMax, (d.InvFlags & SctpData.DestPorts) != 0, numeric, "sctp");
        if ((d.Flags & SctpData.ChunkTypes) != 0)
        {
            if ((d.InvFlags & SctpData.ChunkTypes) != 0) sb.Append(" !");
            AppendChunks(sb, d, numeric);
        }
    }

    /// <summary>
    /// Evaluates the match (xt_sctp.c): ports, then the chunk walk. Non-first fragments never match; a common
    /// header, a chunk header that does not fit or a zero chunk length drops the packet. Flag conditions are keyed by what libxt_sctp
    /// stored (its table index, see <see cref="SctpFlagInfo.ChunkType"/>), compared with the chunk's type.
    /// </summary>
    protected override bool Match(PacketContext ctx, SctpData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, SctpHeader.Length, out ReadOnlySpan<byte> sh)) return HeaderReads.Drop(ctx);
        ushort sport = HeaderReads.U16(sh, 0), dport = HeaderReads.U16(sh, 2);
        if (!Check(d, SctpData.SrcPorts, sport >= d.SportMin && sport <= d.SportMax)) return false;
        if (!Check(d, SctpData.DestPorts, dport >= d.DportMin && dport <= d.DportMax)) return false;
        if ((d.Flags & SctpData.ChunkTypes) == 0) return true;
        bool chunks = MatchChunks(ctx, p, d);
        if (ctx.HotDrop) return false;
        return chunks != ((d.InvFlags & SctpData.ChunkTypes) != 0);
    }

    private static bool Check(SctpData d, uint option, bool condition) =>
        (d.Flags & option) == 0 || condition != ((d.InvFlags & option) != 0);

    private static bool FlagsMatch(SctpData d, byte type, byte flags)
    {
        for (int i = 0; i < d.FlagCount; i++)
        {
            if (d.FlagInfo[i].ChunkType == type) return (flags & d.FlagInfo[i].FlagMask) == d.FlagInfo[i].Flag;
        }
        return true;
    }

    private static bool MatchChunks(PacketContext ctx, Packet p, SctpData d)
    {
        // ALL keeps a copy of the wanted types and clears each one seen (with its flags right).
        Span<uint> left = stackalloc uint[8];
        d.ChunkMap.CopyTo(left);
        int offset = HeaderReads.ThOff(p) + SctpHeader.Length;
        int end = p.Bytes.Length;
        do
        {
            // A chunk header that does not fit, or a chunk of length 0 (which would never advance), is dropped.
            if (!HeaderReads.TryRead(p, offset, 4, out ReadOnlySpan<byte> ch)) return HeaderReads.Drop(ctx);
            byte type = ch[0], flags = ch[1];
            int length = HeaderReads.U16(ch, 2);
            if (length == 0) return HeaderReads.Drop(ctx);
            if (d.ChunkSet(type))
            {
                switch (d.ChunkMatchType)
                {
                    case SctpChunkMatch.Any when FlagsMatch(d, type, flags):
                        return true;
                    case SctpChunkMatch.All when FlagsMatch(d, type, flags):
                        left[type / 32] &= ~(1u << (type % 32));
                        break;
                    case SctpChunkMatch.Only when !FlagsMatch(d, type, flags):
                        return false;
                }
            }
            else if (d.ChunkMatchType == SctpChunkMatch.Only)
            {
                return false;
            }
            offset += (length + 3) & ~3; // SCTP_PAD4
        }
        while (offset < end);
        return d.ChunkMatchType switch
        {
            SctpChunkMatch.All => left.IndexOfAnyExcept(0u) < 0,
            SctpChunkMatch.Any => false,
            _ => true,
        };
    }
}
