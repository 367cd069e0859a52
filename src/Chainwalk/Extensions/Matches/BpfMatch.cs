using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>One classic BPF instruction (struct sock_filter).</summary>
public readonly record struct BpfInstruction(ushort Code, byte Jt, byte Jf, uint K);

/// <summary>Options of <c>-m bpf</c> (struct xt_bpf_info_v1, bytecode mode).</summary>
public sealed class BpfData : ExtensionData
{
    public BpfInstruction[] Program = [];

    public override ExtensionData Clone()
    {
        var c = (BpfData)MemberwiseClone();
        c.Program = (BpfInstruction[])Program.Clone();
        return c;
    }
}

/// <summary><c>-m bpf --bytecode "N,c t f k,…"</c> revision 1 (libxt_bpf.c, xt_bpf.c). Pinned objects never exist here.</summary>
public sealed class BpfMatch : XtExtension<BpfData>
{
    private const int OBytecode = 0, OPinned = 1;
    private const int MaxInstructions = 64;

    public override string Name => "bpf";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("bytecode", OBytecode),
        new("object-pinned", OPinned),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, BpfData d)
    {
        if (option.Id == OPinned) throw ctx.Error("bpf: failed to get bpf object");
        d.Program = ParseProgram(ctx, argument!);
    }

    /// <summary>sscanf's unsigned conversion: white space, an optional sign, decimal digits; false when none.</summary>
    private static bool ScanUnsigned(string s, ref int i, out ulong value)
    {
        while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        int used = NumberParsing.ParseCPrefix(s.AsSpan(i), 10, out value, out _);
        if (used == 0) return false;
        i += used;
        return true;
    }

    private static BpfInstruction[] ParseProgram(ParseContext ctx, string text)
    {
        int pos = 0;
        if (!ScanUnsigned(text, ref pos, out ulong lenRaw) || pos >= text.Length || text[pos] != ',')
            throw ctx.Error("bpf: error parsing program length");
        ushort len = unchecked((ushort)lenRaw);
        if (len == 0) throw ctx.Error("bpf: illegal zero length program");
        if (len > MaxInstructions) throw ctx.Error("bpf: number of instructions exceeds maximum");
        var prog = new List<BpfInstruction>();
        int token = 0;
        while (true)
        {
            int comma = text.IndexOf(',', token);
            if (comma < 0 || comma + 1 >= text.Length) break;
            token = comma + 1;
            if (prog.Count >= len) throw ctx.Error("bpf: real program length exceeds the encoded length parameter");
            int p = token;
            if (!ScanUnsigned(text, ref p, out ulong code) || !ScanUnsigned(text, ref p, out ulong jt)
                || !ScanUnsigned(text, ref p, out ulong jf) || !ScanUnsigned(text, ref p, out ulong k))
                throw ctx.Error($"bpf: error at instr {prog.Count}");
            prog.Add(new BpfInstruction(unchecked((ushort)code), unchecked((byte)jt), unchecked((byte)jf), unchecked((uint)k)));
        }
        if (prog.Count != len) throw ctx.Error("bpf: parsed program length is less than the encoded length parameter");
        return prog.ToArray();
    }

    protected override void FinalCheck(ParseContext ctx, BpfData d)
    {
        ulong f = d.Given & ((1 << OBytecode) | (1 << OPinned));
        if (f != (1 << OBytecode) && f != (1 << OPinned)) throw ctx.Error("bpf: one of --bytecode or --pinned is required");
    }

    private static readonly HashSet<ushort> ValidCodes = BuildValidCodes();

    private static HashSet<ushort> BuildValidCodes()
    {
        var s = new HashSet<ushort>();
        foreach (ushort op in new ushort[] { 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0 })
        {
            s.Add((ushort)(0x04 | op));
            s.Add((ushort)(0x04 | op | 0x08));
        }
        s.Add(0x04 | 0x80);
        foreach (ushort c in new ushort[] { 0x20, 0x28, 0x30, 0x80, 0x40, 0x48, 0x50, 0x00, 0x60, 0x81, 0xb1, 0x01, 0x61, 0x02, 0x03, 0x07, 0x87, 0x06, 0x16, 0x05 })
        {
            s.Add(c);
        }
        foreach (ushort op in new ushort[] { 0x10, 0x20, 0x30, 0x40 })
        {
            s.Add((ushort)(0x05 | op));
            s.Add((ushort)(0x05 | op | 0x08));
        }
        return s;
    }

    /// <summary>bpf_check_classic: known opcodes, jumps inside the program, scratch slots 0-15, a return at the end.</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, BpfData d)
    {
        BpfInstruction[] p = d.Program;
        for (int pc = 0; pc < p.Length; pc++)
        {
            BpfInstruction ins = p[pc];
            if (!ValidCodes.Contains(ins.Code)) return RulesetEditor.InvalidArgument;
            int cls = ins.Code & 0x07;
            switch (cls)
            {
                case 0x04:
                    {
                        int op = ins.Code & 0xf0;
                        bool byK = (ins.Code & 0x08) == 0;
                        if (byK && (op is 0x30 or 0x90) && ins.K == 0) return RulesetEditor.InvalidArgument;
                        if (byK && (op is 0x60 or 0x70) && ins.K >= 32) return RulesetEditor.InvalidArgument;
                        break;
                    }
                case 0x00:
                case 0x01:
                    if ((ins.Code & 0xe0) == 0x60 && ins.K >= 16) return RulesetEditor.InvalidArgument;
                    break;
                case 0x02:
                case 0x03:
                    if (ins.K >= 16) return RulesetEditor.InvalidArgument;
                    break;
                case 0x05:
                    if ((ins.Code & 0xf0) == 0x00)
                    {
                        if (ins.K >= (uint)(p.Length - pc - 1)) return RulesetEditor.InvalidArgument;
                    }
                    else if (pc + 1 + ins.Jt >= p.Length || pc + 1 + ins.Jf >= p.Length)
                    {
                        return RulesetEditor.InvalidArgument;
                    }
                    break;
            }
        }
        if (p.Length == 0 || (p[^1].Code & 0x07) != 0x06) return RulesetEditor.InvalidArgument;
        return null;
    }

    private static void Code(StringBuilder sb, BpfInstruction[] p, string tail)
    {
        for (int i = 0; i < p.Length; i++)
        {
            sb.Append(XtParse.Dec(p[i].Code)).Append(' ').Append(XtParse.Dec(p[i].Jt)).Append(' ')
              .Append(XtParse.Dec(p[i].Jf)).Append(' ').Append(XtParse.Dec(p[i].K)).Append(i + 1 < p.Length ? "," : tail);
        }
    }

    protected override void Save(StringBuilder sb, BpfData d, IpFamily family)
    {
        sb.Append(" --bytecode \"").Append(XtParse.Dec((ulong)d.Program.Length)).Append(',');
        Code(sb, d.Program, "\"");
    }

    /// <summary>As iptables prints it: no leading space, and the last instruction followed by a NUL byte.</summary>
    protected override void Print(StringBuilder sb, BpfData d, IpFamily family, bool numeric)
    {
        sb.Append("match bpf ");
        Code(sb, d.Program, "\0");
    }

    /// <summary>
    /// xt_bpf.c: runs the classic BPF program on the packet with the data starting at the network header
    /// (the IP header), as the kernel's converted filter does; a non-zero return value matches. A load
    /// beyond the packet, or a division by zero, ends the program with 0. Pinned eBPF objects cannot exist
    /// on the virtual host (--object-pinned already fails when the rule is parsed).
    /// </summary>
    protected override bool Match(PacketContext ctx, BpfData d) => Run(d.Program, ctx) != 0;

    private const uint AncillaryBase = 0xfffff000; // SKF_AD_OFF
    private const uint NetBase = 0xfff00000; // SKF_NET_OFF
    private const uint LinkBase = 0xffe00000; // SKF_LL_OFF

    /// <summary>The classic BPF interpreter (net/core/filter.c semantics).</summary>
    internal static uint Run(BpfInstruction[] prog, PacketContext ctx)
    {
        Span<uint> mem = stackalloc uint[16];
        mem.Clear();
        ReadOnlySpan<byte> data = ctx.Packet.Bytes.AsSpan(0, Math.Min(ctx.Packet.Bytes.Length, ctx.Packet.TotalLength));
        uint a = 0, x = 0;
        int pc = 0;
        while (pc < prog.Length)
        {
            BpfInstruction ins = prog[pc++];
            int cls = ins.Code & 0x07;
            switch (cls)
            {
                case 0x00: // LD
                case 0x01: // LDX
                    {
                        int mode = ins.Code & 0xe0, size = ins.Code & 0x18;
                        uint v;
                        switch (mode)
                        {
                            case 0x00: v = ins.K; break;
                            case 0x80: v = (uint)data.Length; break;
                            case 0x60: v = mem[(int)(ins.K & 15)]; break;
                            case 0x20:
                            case 0x40:
                                {
                                    uint k = ins.K;
                                    if (cls == 0x00 && mode == 0x20 && k >= AncillaryBase)
                                    {
                                        if (!Ancillary(ctx, k - AncillaryBase, data.Length, ref a, x)) return 0;
                                        continue;
                                    }
                                    uint off = mode == 0x40 ? x + k : k;
                                    if (!Load(data, off, size, out v)) return 0;
                                    break;
                                }
                            case 0xa0: // MSH: X = 4 * (P[k] & 0xf)
                                if (!Load(data, ins.K, 0x10, out v)) return 0;
                                v = (v & 0xf) << 2;
                                break;
                            default:
                                return 0;
                        }
                        if (cls == 0x00) a = v;
                        else x = v;
                        break;
                    }
                case 0x02: mem[(int)(ins.K & 15)] = a; break;
                case 0x03: mem[(int)(ins.K & 15)] = x; break;
                case 0x04: // ALU
                    {
                        uint src = (ins.Code & 0x08) != 0 ? x : ins.K;
                        switch (ins.Code & 0xf0)
                        {
                            case 0x00: a += src; break;
                            case 0x10: a -= src; break;
                            case 0x20: a *= src; break;
                            case 0x30:
                                if (src == 0) return 0;
                                a /= src;
                                break;
                            case 0x40: a |= src; break;
                            case 0x50: a &= src; break;
                            case 0x60: a = src >= 32 ? 0 : a << (int)src; break;
                            case 0x70: a = src >= 32 ? 0 : a >> (int)src; break;
                            case 0x80: a = unchecked(0u - a); break;
                            case 0x90:
                                if (src == 0) return 0;
                                a %= src;
                                break;
                            case 0xa0: a ^= src; break;
                            default: return 0;
                        }
                        break;
                    }
                case 0x05: // JMP
                    {
                        uint src = (ins.Code & 0x08) != 0 ? x : ins.K;
                        int op = ins.Code & 0xf0;
                        if (op == 0x00)
                        {
                            pc += (int)ins.K;
                            break;
                        }
                        bool cond = op switch
                        {
                            0x10 => a == src,
                            0x20 => a > src,
                            0x30 => a >= src,
                            0x40 => (a & src) != 0,
                            _ => false,
                        };
                        pc += cond ? ins.Jt : ins.Jf;
                        break;
                    }
                case 0x06: // RET
                    return (ins.Code & 0x18) switch
                    {
                        0x00 => ins.K,
                        0x08 => x,
                        _ => a,
                    };
                default: // MISC
                    if ((ins.Code & 0xf8) == 0x80) a = x;
                    else x = a;
                    break;
            }
        }
        return 0;
    }

    private static bool Load(ReadOnlySpan<byte> data, uint off, int size, out uint v)
    {
        v = 0;
        if (off >= LinkBase) return false; // link-layer bytes are not in the skb data on this host
        if (off >= NetBase) off -= NetBase; // SKF_NET_OFF: the network header is the data start
        int n = size switch { 0x00 => 4, 0x08 => 2, _ => 1 };
        if (off > int.MaxValue || off + (uint)n > (uint)data.Length) return false;
        for (int i = 0; i < n; i++) v = (v << 8) | data[(int)off + i];
        return true;
    }

    /// <summary>The SKF_AD_* ancillary loads into A; false ends the program with 0.</summary>
    private static bool Ancillary(PacketContext ctx, uint which, int length, ref uint a, uint x)
    {
        switch (which)
        {
            case 0: a = ctx.Skb.EtherType; return true; // SKF_AD_PROTOCOL
            case 4: a = ctx.Skb.PacketType == Engine.PacketType.Outgoing ? 0u : (uint)ctx.Skb.PacketType; return true; // PKTTYPE
            case 8: // IFINDEX: the skb's device (in, else out); none ends the program
                {
                    string? dev = ctx.InDev ?? ctx.OutDev;
                    if (dev is null || ctx.Host.FindLink(dev) is not { } l) return false;
                    a = (uint)l.Index;
                    return true;
                }
            case 20: a = ctx.Skb.Mark; return true; // MARK
            case 28: // HATYPE
                {
                    string? dev = ctx.InDev ?? ctx.OutDev;
                    if (dev is null || ctx.Host.FindLink(dev) is not { } l) return false;
                    a = l.Kind == "loopback" ? 772u : 1u;
                    return true;
                }
            case 36: a = (uint)ctx.Skb.Cpu; return true; // CPU
            case 40: a ^= x; return true; // ALU_XOR_X
            case 52: a = (uint)ctx.Packet.TransportOffset; return true; // PAY_OFFSET (flow dissector's transport start)
            case 56: a = (uint)ctx.Random.NextInt64(0, 1L << 32); return true; // RANDOM
            default: a = 0; _ = length; return true; // queue, rxhash, VLAN: 0 on the virtual host
        }
    }
}
