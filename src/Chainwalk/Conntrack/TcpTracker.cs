using System.Buffers.Binary;
using Chainwalk.Host;
using Chainwalk.Wire;

namespace Chainwalk.Conntrack;

/// <summary>TCP conntrack states (enum tcp_conntrack); the order is the kernel's (conntrack -L prints the names).</summary>
public enum TcpCtState : byte
{
    None = 0,
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    SynSent2,

    /// <summary>sIV: the packet is invalid in this state.</summary>
    Invalid,

    /// <summary>sIG: the packet is let through without changing the state.</summary>
    Ignore,
}

/// <summary>What one side of a TCP connection has shown (struct ip_ct_tcp_state).</summary>
public struct TcpSide
{
    public const byte FlagWindowScale = 0x01, FlagSackPerm = 0x02, FlagCloseInit = 0x04, FlagBeLiberal = 0x08,
        FlagDataUnacknowledged = 0x10, FlagMaxAckSet = 0x20;

    public uint End;
    public uint MaxEnd;
    public uint MaxWin;
    public uint MaxAck;
    public byte Scale;
    public byte Flags;

    public void Reset()
    {
        End = MaxEnd = MaxWin = MaxAck = 0;
        Scale = 0;
        Flags &= FlagBeLiberal;
    }
}

/// <summary>The two sides of a TCP connection (ip_ct_tcp's seen[2]), stored inline.</summary>
[System.Runtime.CompilerServices.InlineArray(2)]
public struct TcpSidePair
{
    private TcpSide _side;
}

/// <summary>
/// The TCP part of a connection (struct ip_ct_tcp), kept inline in its <see cref="ConnEntry"/> as the kernel keeps it in
/// nf_conn's proto union: no object of its own, no pointer to follow per packet.
/// </summary>
public struct TcpConnState
{
    public const byte LastFlagExpChallengeAck = 0x40, LastFlagSimultaneousOpen = 0x80;

    /// <summary>The two directions' window state, inline (no objects of their own).</summary>
    public TcpSidePair Seen;
    public TcpCtState State;
    public byte LastDir;
    /// <summary>The last packet's flag index (<see cref="TcpTracker.NoneSet"/> in a new connection: tcp_new sets it).</summary>
    public byte LastIndex;
    public uint LastSeq;
    public uint LastAck;
    public uint LastEnd;
    public ushort LastWin;
    public byte LastWscale;
    public byte LastFlags;
    public byte Retrans;
}

/// <summary>
/// The TCP tracker (net/netfilter/nf_conntrack_proto_tcp.c): packet checks (tcp_error), the state table
/// (tcp_conntracks), window tracking (tcp_in_window) with nf_conntrack_tcp_be_liberal and _loose, and the
/// timeouts from the nf_conntrack_tcp_timeout_* sysctls.
/// </summary>
public static class TcpTracker
{
    public const byte SynSet = 0, SynAckSet = 1, FinSet = 2, AckSet = 3, RstSet = 4, NoneSet = 5;

    private const TcpCtState sNO = TcpCtState.None, sSS = TcpCtState.SynSent, sSR = TcpCtState.SynRecv, sES = TcpCtState.Established,
        sFW = TcpCtState.FinWait, sCW = TcpCtState.CloseWait, sLA = TcpCtState.LastAck, sTW = TcpCtState.TimeWait,
        sCL = TcpCtState.Close, sS2 = TcpCtState.SynSent2, sIV = TcpCtState.Invalid, sIG = TcpCtState.Ignore;

    /// <summary>
    /// tcp_conntracks in Linux 6.x, [direction][flag index][old state] → new state, flat: the new state of a packet is
    /// <c>StateTable[dir * 60 + index * 10 + old]</c> (<see cref="NextState"/>). One load from the assembly's data, no
    /// array of arrays (three dependent loads and bounds checks per packet before).
    /// </summary>
    private static ReadOnlySpan<byte> StateTable =>
    [
        // original
        /* syn    */ bSS, bSS, bIG, bIG, bIG, bIG, bIG, bSS, bSS, bS2,
        /* synack */ bIV, bIV, bSR, bIV, bIV, bIV, bIV, bIV, bIV, bSR,
        /* fin    */ bIV, bIV, bFW, bFW, bLA, bLA, bLA, bTW, bCL, bIV,
        /* ack    */ bES, bIV, bES, bES, bCW, bCW, bTW, bTW, bCL, bIV,
        /* rst    */ bIV, bCL, bCL, bCL, bCL, bCL, bCL, bCL, bCL, bCL,
        /* none   */ bIV, bIV, bIV, bIV, bIV, bIV, bIV, bIV, bIV, bIV,
        // reply
        /* syn    */ bIV, bS2, bIV, bIV, bIV, bIV, bIV, bSS, bIV, bS2,
        /* synack */ bIV, bSR, bIG, bIG, bIG, bIG, bIG, bIG, bIG, bSR,
        /* fin    */ bIV, bIV, bFW, bFW, bLA, bLA, bLA, bTW, bCL, bIV,
        /* ack    */ bIV, bIG, bSR, bES, bCW, bCW, bTW, bTW, bCL, bIG,
        /* rst    */ bIV, bCL, bCL, bCL, bCL, bCL, bCL, bCL, bCL, bCL,
        /* none   */ bIV, bIV, bIV, bIV, bIV, bIV, bIV, bIV, bIV, bIV,
    ];

    private const byte bSS = (byte)sSS, bSR = (byte)sSR, bES = (byte)sES, bFW = (byte)sFW, bCW = (byte)sCW,
        bLA = (byte)sLA, bTW = (byte)sTW, bCL = (byte)sCL, bS2 = (byte)sS2, bIV = (byte)sIV, bIG = (byte)sIG;

    /// <summary>The new state for a packet of direction <paramref name="dir"/> (0 or 1) with flag index <paramref name="index"/> (0–5) in state <paramref name="old"/> (None … SynSent2).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static TcpCtState NextState(int dir, int index, TcpCtState old) => (TcpCtState)StateTable[(dir * 6 + index) * 10 + (int)old];

    private static readonly string[] Names =
        ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"];

    public static string Name(TcpCtState s) => (int)s < Names.Length ? Names[(int)s] : "INVALID";

    /// <summary>Timeout sysctl per state (SYN_SENT2 has none: the kernel's 2 minutes).</summary>
    private static readonly string?[] TimeoutKeys =
    [
        null,
        "net.netfilter.nf_conntrack_tcp_timeout_syn_sent",
        "net.netfilter.nf_conntrack_tcp_timeout_syn_recv",
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
        "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
        "net.netfilter.nf_conntrack_tcp_timeout_last_ack",
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
        "net.netfilter.nf_conntrack_tcp_timeout_close",
        null,
    ];

    private static readonly int[] DefaultTimeouts = [0, 120, 60, 432000, 120, 60, 30, 120, 10, 120];

    /// <summary>How many states have a timeout (<see cref="TcpCtState.None"/> … <see cref="TcpCtState.SynSent2"/>).</summary>
    internal const int StateCount = 10;

    /// <summary>A state's timeout sysctl as the host has it now (<see cref="ConntrackSysctls"/> keeps them per host generation).</summary>
    internal static int ReadStateTimeout(VirtualHost host, TcpCtState s) =>
        TimeoutKeys[(int)s] is { } key ? Sysctls.Int(host, key, DefaultTimeouts[(int)s]) : DefaultTimeouts[(int)s];

    private static int StateTimeout(VirtualHost host, TcpCtState s) => ConntrackSysctls.For(host).TcpTimeouts[(int)s];

    /// <summary>
    /// nf_conntrack_tcp_set_closing (nf_conntrack_proto_tcp.c), which REJECT's nf_send_reset calls on the
    /// refused packet's connection once the reset is on its way: a confirmed connection goes to CLOSE with the
    /// CLOSE timeout (not again when already CLOSE, nor with a fixed timeout).
    /// </summary>
    public static void SetClosing(VirtualHost host, ConnEntry ct, double now)
    {
        if (!ct.IsConfirmed || !ct.HasTcp) return;
        ref TcpConnState st = ref ct.Tcp;
        TcpCtState old = st.State;
        st.State = TcpCtState.Close;
        if (old == TcpCtState.Close || (ct.Status & ConnStatus.FixedTimeout) != 0) return;
        ct.Timeout = now + StateTimeout(host, TcpCtState.Close);
    }

    private static int UnackTimeout(VirtualHost host) => ConntrackSysctls.For(host).TcpUnackTimeout;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static byte Index(TcpFlags f)
    {
        if ((f & TcpFlags.Rst) != 0) return RstSet;
        if ((f & TcpFlags.Syn) != 0) return (f & TcpFlags.Ack) != 0 ? SynAckSet : SynSet;
        if ((f & TcpFlags.Fin) != 0) return FinSet;
        if ((f & TcpFlags.Ack) != 0) return AckSet;
        return NoneSet;
    }

    /// <summary>tcp_error: false (with the log reason) for a packet conntrack calls invalid before looking at the state.</summary>
    public static string? Error(Packet p, bool checkChecksum)
    {
        if (!p.HasTransportHeader || p.TransportLength < p.TransportHeaderLength) return "truncated packet";
        if (checkChecksum && !p.TransportChecksumValid) return "bad checksum";
        int flags = (int)p.TcpFlags & ~(int)(TcpFlags.Ece | TcpFlags.Cwr | TcpFlags.Psh);
        bool valid = flags switch
        {
            0x02 or 0x22 or 0x12 or 0x04 or 0x14 or 0x11 or 0x31 or 0x10 or 0x30 => true,
            _ => false,
        };
        return valid ? null : "invalid tcp flag combination";
    }

    private static bool After(uint a, uint b) => (int)(b - a) < 0;

    private static bool Before(uint a, uint b) => (int)(a - b) < 0;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static uint SeqPlusLen(Packet p)
    {
        TcpFlags f = p.TcpFlags;
        return p.SequenceNumber + (uint)p.PayloadLength + ((f & TcpFlags.Syn) != 0 ? 1u : 0) + ((f & TcpFlags.Fin) != 0 ? 1u : 0);
    }

    /// <summary>tcp_options: window scale and SACK-permitted into the side's flags.</summary>
    private static void Options(Packet p, ref TcpSide side)
    {
        ReadOnlySpan<byte> opts = OptionBytes(p);
        if (opts.Length == 0) return;
        side.Scale = 0;
        side.Flags &= TcpSide.FlagBeLiberal;
        int i = 0;
        while (i < opts.Length)
        {
            byte kind = opts[i++];
            if (kind == TcpOptionKind.End) return;
            if (kind == TcpOptionKind.Nop) continue;
            if (opts.Length - i + 1 < 2) return;
            int size = opts[i++];
            if (size < 2 || size > opts.Length - i + 2) return;
            if (kind == TcpOptionKind.SackPermitted && size == 2) side.Flags |= TcpSide.FlagSackPerm;
            else if (kind == TcpOptionKind.WindowScale && size == 3)
            {
                side.Scale = Math.Min(opts[i], (byte)14);
                side.Flags |= TcpSide.FlagWindowScale;
            }
            i += size - 2;
        }
    }

    private static ReadOnlySpan<byte> OptionBytes(Packet p)
    {
        int len = p.TransportHeaderLength - 20;
        if (len <= 0 || p.TransportOffset + 20 + len > p.Bytes.Length) return default;
        return p.Bytes.AsSpan(p.TransportOffset + 20, len);
    }

    /// <summary>tcp_sack: the highest right edge of the SACK blocks, when above <paramref name="sack"/>.</summary>
    private static uint Sack(Packet p, uint sack)
    {
        ReadOnlySpan<byte> opts = OptionBytes(p);
        if (opts.Length == 0) return sack;
        if (opts.Length == 12 && opts[0] == 1 && opts[1] == 1 && opts[2] == 8 && opts[3] == 10) return sack;
        int i = 0;
        while (i < opts.Length)
        {
            byte kind = opts[i++];
            if (kind == TcpOptionKind.End) return sack;
            if (kind == TcpOptionKind.Nop) continue;
            if (opts.Length - i + 1 < 2) return sack;
            int size = opts[i++];
            if (size < 2 || size > opts.Length - i + 2) return sack;
            if (kind == TcpOptionKind.Sack && size >= 10 && (size - 2) % 8 == 0)
            {
                for (int b = 0; b < size - 2; b += 8)
                {
                    uint edge = BinaryPrimitives.ReadUInt32BigEndian(opts[(i + b + 4)..]);
                    if (After(edge, sack)) sack = edge;
                }
                return sack;
            }
            i += size - 2;
        }
        return sack;
    }

    /// <summary>tcp_new: the state of a new connection from its first packet; false = invalid (or not picked up).</summary>
    /// <remarks>
    /// The state is written in the entry itself (<see cref="ConnEntry.StartTcp"/>), not built in a local and copied: the copy's
    /// 64-byte load of the local's just-stored fields could not be forwarded from those stores. A packet refused here leaves
    /// the entry's TCP state as it was, as before.
    /// </remarks>
    public static bool New(ConnEntry ct, Packet p, VirtualHost host)
    {
        TcpCtState first = NextState(0, Index(p.TcpFlags), TcpCtState.None);
        if (first >= TcpCtState.Invalid) return false;
        bool syn = first == TcpCtState.SynSent;
        if (!syn && Sysctls.Int(host, "net.netfilter.nf_conntrack_tcp_loose", 1) == 0) return false;
        ref TcpConnState st = ref ct.StartTcp();
        ref TcpSide s0 = ref st.Seen[0];
        s0.End = SeqPlusLen(p);
        s0.MaxWin = p.Window == 0 ? 1u : p.Window;
        if (syn)
        {
            s0.MaxEnd = s0.End;
            Options(p, ref s0);
        }
        else
        {
            // Picked up in the middle: its history is lost; assume SACK and be liberal about windows.
            s0.MaxEnd = s0.End + s0.MaxWin;
            s0.Flags = st.Seen[1].Flags = TcpSide.FlagSackPerm | TcpSide.FlagBeLiberal;
        }
        st.LastIndex = NoneSet;
        return true;
    }

    private enum WindowResult : byte
    {
        Accept,
        Ignore,
        Invalid,
    }

    private static void InitSender(ref TcpSide sender, ref TcpSide receiver, Packet p, uint end, uint win, int dir)
    {
        sender.End = sender.MaxEnd = end;
        sender.MaxWin = win == 0 ? 1u : win;
        Options(p, ref sender);
        if (dir == 1 && !((sender.Flags & TcpSide.FlagWindowScale) != 0 && (receiver.Flags & TcpSide.FlagWindowScale) != 0))
        {
            sender.Scale = 0;
            receiver.Scale = 0;
        }
    }

    private static WindowResult LogInvalid(in TcpSide sender, bool liberal, WindowResult r) =>
        (sender.Flags & TcpSide.FlagBeLiberal) != 0 || liberal ? WindowResult.Accept : r;

    private static uint MaxAckWindow(in TcpSide sender) => sender.MaxWin > 66000 ? sender.MaxWin : 66000;

    /// <summary>tcp_in_window.</summary>
    private static WindowResult InWindow(ref TcpConnState state, int dir, byte index, Packet p, bool liberal)
    {
        ref TcpSide sender = ref state.Seen[dir];
        ref TcpSide receiver = ref state.Seen[1 - dir];
        TcpFlags f = p.TcpFlags;
        bool syn = (f & TcpFlags.Syn) != 0, ackFlag = (f & TcpFlags.Ack) != 0, rst = (f & TcpFlags.Rst) != 0;
        uint seq = p.SequenceNumber;
        uint ack = p.AcknowledgmentNumber, sack = ack;
        ushort winRaw = p.Window;
        uint win = winRaw;
        uint end = SeqPlusLen(p);
        if ((receiver.Flags & TcpSide.FlagSackPerm) != 0) sack = Sack(p, sack);

        if (sender.MaxWin == 0)
        {
            if (syn)
            {
                InitSender(ref sender, ref receiver, p, end, win, dir);
                if (!ackFlag) return WindowResult.Accept;
            }
            else
            {
                sender.End = end;
                uint swin = win << sender.Scale;
                sender.MaxWin = swin == 0 ? 1u : swin;
                sender.MaxEnd = end + sender.MaxWin;
                if (receiver.MaxWin == 0) receiver.End = receiver.MaxEnd = sack;
                else if (sack == receiver.End + 1) receiver.End++;
            }
        }
        else if (syn && After(end, sender.End) && state.State is TcpCtState.SynSent or TcpCtState.SynRecv)
        {
            InitSender(ref sender, ref receiver, p, end, win, dir);
            if (dir == 1 && !ackFlag) return WindowResult.Accept;
        }

        if (!ackFlag) ack = sack = receiver.End;
        else if (rst && ack == 0) ack = sack = receiver.End;

        if (rst && seq == 0 && state.State == TcpCtState.SynSent) seq = end = sender.End;

        bool inRecvWin;
        if (!Before(seq, sender.MaxEnd + 1))
        {
            uint overshot = end - sender.MaxEnd + 1;
            bool ackOk = After(sack, receiver.End - MaxAckWindow(sender) - 1);
            inRecvWin = receiver.MaxWin != 0 && After(end, sender.End - receiver.MaxWin - 1);
            if (inRecvWin && ackOk && overshot <= receiver.MaxWin && Before(sack, receiver.End + 1))
            {
                sender.End = end;
                sender.Flags |= TcpSide.FlagDataUnacknowledged;
                return LogInvalid(sender, liberal, WindowResult.Ignore);
            }
            return LogInvalid(sender, liberal, WindowResult.Invalid);
        }
        if (!Before(sack, receiver.End + 1)) return LogInvalid(sender, liberal, WindowResult.Invalid);
        inRecvWin = receiver.MaxWin == 0 || After(end, sender.End - receiver.MaxWin - 1);
        if (!inRecvWin) return LogInvalid(sender, liberal, WindowResult.Ignore);
        if (!After(sack, receiver.End - MaxAckWindow(sender) - 1)) return LogInvalid(sender, liberal, WindowResult.Ignore);

        if (!syn) win <<= sender.Scale;
        uint swin2 = win + (sack - ack);
        if (sender.MaxWin < swin2) sender.MaxWin = swin2;
        if (After(end, sender.End))
        {
            sender.End = end;
            sender.Flags |= TcpSide.FlagDataUnacknowledged;
        }
        if (ackFlag)
        {
            if ((sender.Flags & TcpSide.FlagMaxAckSet) == 0)
            {
                sender.MaxAck = ack;
                sender.Flags |= TcpSide.FlagMaxAckSet;
            }
            else if (After(ack, sender.MaxAck))
            {
                sender.MaxAck = ack;
            }
        }
        if (receiver.MaxWin != 0 && After(end, sender.MaxEnd)) receiver.MaxWin += end - sender.MaxEnd;
        if (After(sack + win, receiver.MaxEnd - 1))
        {
            receiver.MaxEnd = sack + win;
            if (win == 0) receiver.MaxEnd++;
        }
        if (ack == receiver.End) receiver.Flags &= unchecked((byte)~TcpSide.FlagDataUnacknowledged);

        if (index == AckSet)
        {
            if (state.LastDir == dir && state.LastSeq == seq && state.LastAck == ack && state.LastEnd == end && state.LastWin == winRaw)
            {
                state.Retrans++;
            }
            else
            {
                state.LastDir = (byte)dir;
                state.LastSeq = seq;
                state.LastAck = ack;
                state.LastEnd = end;
                state.LastWin = winRaw;
                state.Retrans = 0;
            }
        }
        return WindowResult.Accept;
    }

    /// <summary>
    /// <see cref="InWindow"/> for a packet whose flag index is <see cref="AckSet"/> (ACK without SYN, FIN or RST): the steps
    /// of tcp_in_window that a SYN or a RST takes, and the ACK flag's absence, left out; every other step as there.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static WindowResult InWindowAck(ref TcpConnState state, int dir, Packet p, bool liberal)
    {
        ref TcpSide sender = ref state.Seen[dir];
        ref TcpSide receiver = ref state.Seen[1 - dir];
        uint seq = p.SequenceNumber;
        uint ack = p.AcknowledgmentNumber, sack = ack;
        ushort winRaw = p.Window;
        uint win = winRaw;
        uint end = seq + (uint)p.PayloadLength;
        if ((receiver.Flags & TcpSide.FlagSackPerm) != 0) sack = Sack(p, sack);

        if (sender.MaxWin == 0)
        {
            sender.End = end;
            uint swin = win << sender.Scale;
            sender.MaxWin = swin == 0 ? 1u : swin;
            sender.MaxEnd = end + sender.MaxWin;
            if (receiver.MaxWin == 0) receiver.End = receiver.MaxEnd = sack;
            else if (sack == receiver.End + 1) receiver.End++;
        }

        bool inRecvWin;
        if (!Before(seq, sender.MaxEnd + 1))
        {
            uint overshot = end - sender.MaxEnd + 1;
            bool ackOk = After(sack, receiver.End - MaxAckWindow(sender) - 1);
            inRecvWin = receiver.MaxWin != 0 && After(end, sender.End - receiver.MaxWin - 1);
            if (inRecvWin && ackOk && overshot <= receiver.MaxWin && Before(sack, receiver.End + 1))
            {
                sender.End = end;
                sender.Flags |= TcpSide.FlagDataUnacknowledged;
                return LogInvalid(sender, liberal, WindowResult.Ignore);
            }
            return LogInvalid(sender, liberal, WindowResult.Invalid);
        }
        if (!Before(sack, receiver.End + 1)) return LogInvalid(sender, liberal, WindowResult.Invalid);
        inRecvWin = receiver.MaxWin == 0 || After(end, sender.End - receiver.MaxWin - 1);
        if (!inRecvWin) return LogInvalid(sender, liberal, WindowResult.Ignore);
        if (!After(sack, receiver.End - MaxAckWindow(sender) - 1)) return LogInvalid(sender, liberal, WindowResult.Ignore);

        win <<= sender.Scale;
        uint swin2 = win + (sack - ack);
        if (sender.MaxWin < swin2) sender.MaxWin = swin2;
        if (After(end, sender.End))
        {
            sender.End = end;
            sender.Flags |= TcpSide.FlagDataUnacknowledged;
        }
        if ((sender.Flags & TcpSide.FlagMaxAckSet) == 0)
        {
            sender.MaxAck = ack;
            sender.Flags |= TcpSide.FlagMaxAckSet;
        }
        else if (After(ack, sender.MaxAck))
        {
            sender.MaxAck = ack;
        }
        if (receiver.MaxWin != 0 && After(end, sender.MaxEnd)) receiver.MaxWin += end - sender.MaxEnd;
        if (After(sack + win, receiver.MaxEnd - 1))
        {
            receiver.MaxEnd = sack + win;
            if (win == 0) receiver.MaxEnd++;
        }
        if (ack == receiver.End) receiver.Flags &= unchecked((byte)~TcpSide.FlagDataUnacknowledged);

        if (state.LastDir == dir && state.LastSeq == seq && state.LastAck == ack && state.LastEnd == end && state.LastWin == winRaw)
        {
            state.Retrans++;
        }
        else
        {
            state.LastDir = (byte)dir;
            state.LastSeq = seq;
            state.LastAck = ack;
            state.LastEnd = end;
            state.LastWin = winRaw;
            state.Retrans = 0;
        }
        return WindowResult.Accept;
    }

    /// <summary>What <see cref="Packet"/> did to the connection.</summary>
    public enum Outcome : byte
    {
        /// <summary>Accepted; the timeout and counters were refreshed.</summary>
        Accept,

        /// <summary>Accepted without touching the state or the timeout (ignored packet, SYN retransmit).</summary>
        AcceptQuiet,

        /// <summary>Invalid: the packet leaves without a conntrack entry.</summary>
        Invalid,

        /// <summary>An old connection is reopened: delete the entry and look the packet up again.</summary>
        Repeat,

        /// <summary>A reply RST to an unreplied connection: accepted, and the entry is deleted.</summary>
        Kill,
    }

    /// <summary>nf_conntrack_tcp_packet for a packet of a connection whose TCP state exists (tcp_new done for new ones).</summary>
    public static Outcome Packet(ConnEntry ct, Packet p, int dir, VirtualHost host, double now, out double timeout) =>
        Packet(ct, p, dir, host, ConntrackSysctls.For(host), now, out timeout);

    /// <summary>
    /// <see cref="Packet(ConnEntry, Packet, int, VirtualHost, double, out double)"/> with the host's sysctl snapshot as the
    /// caller keeps it (<see cref="ConntrackHooks"/>' instance field: no thread-static read per packet).
    /// </summary>
    internal static Outcome Packet(ConnEntry ct, Packet p, int dir, VirtualHost host, ConntrackSysctls sys, double now, out double timeout)
    {
        // An ACK (no SYN, FIN or RST) of an ESTABLISHED connection, the common packet: the same decisions in fewer steps.
        if (ct.Tcp.State == TcpCtState.Established && (p.TcpFlags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst | TcpFlags.Ack)) == TcpFlags.Ack)
            return EstablishedAck(ct, p, dir, sys, out timeout);
        return PacketGeneral(ct, p, dir, host, sys, now, out timeout);
    }

    /// <summary>
    /// <see cref="Packet(ConnEntry, Packet, int, VirtualHost, ConntrackSysctls, double, out double)"/> for an ACK (flag index
    /// <see cref="AckSet"/>) of an ESTABLISHED connection, as nf_conntrack_tcp_packet decides it with what that case fixes:
    /// the new state is ESTABLISHED in both directions (tcp_conntracks), no state's special case applies, tcp_in_window runs
    /// with no SYN, no RST and the ACK flag set (<see cref="InWindowAck"/>), an invalid result changes nothing more
    /// (nf_tcp_handle_invalid acts on FIN and RST only), no close is begun, and the RST timeout and the "kill an unreplied
    /// connection" cases cannot arise. The general path (<see cref="PacketGeneral"/>) gives the same result for every such packet.
    /// </summary>
    private static Outcome EstablishedAck(ConnEntry ct, Packet p, int dir, ConntrackSysctls sys, out double timeout)
    {
        timeout = 0;
        ref TcpConnState st = ref ct.Tcp;
        WindowResult res = InWindowAck(ref st, dir, p, sys.TcpLiberal);
        if (res != WindowResult.Accept) return res == WindowResult.Ignore ? Outcome.AcceptQuiet : Outcome.Invalid;
        st.LastIndex = AckSet;
        st.LastDir = (byte)dir;

        int[] timeouts = sys.TcpTimeouts;
        int stateTimeout = timeouts[(int)TcpCtState.Established];
        int t;
        if (st.Retrans >= sys.TcpMaxRetrans && stateTimeout > sys.TcpRetransTimeout)
            t = sys.TcpRetransTimeout;
        else if (((st.Seen[0].Flags | st.Seen[1].Flags) & TcpSide.FlagDataUnacknowledged) != 0 && stateTimeout > sys.TcpUnackTimeout)
            t = sys.TcpUnackTimeout;
        else if (st.LastWin == 0 && stateTimeout > sys.TcpRetransTimeout)
            t = sys.TcpRetransTimeout;
        else
            t = stateTimeout;

        ConnStatus status = ct.Status;
        if ((status & ConnStatus.SeenReply) == 0)
        {
            if (t > sys.TcpUnackTimeout) t = sys.TcpUnackTimeout;
        }
        else if ((status & ConnStatus.Assured) == 0)
        {
            ct.Status = status | ConnStatus.Assured;
        }
        timeout = t;
        return Outcome.Accept;
    }

    /// <summary>nf_conntrack_tcp_packet, every case (<see cref="Packet(ConnEntry, Packet, int, VirtualHost, ConntrackSysctls, double, out double)"/> takes an ESTABLISHED ACK by <see cref="EstablishedAck"/>).</summary>
    internal static Outcome PacketGeneral(ConnEntry ct, Packet p, int dir, VirtualHost host, ConntrackSysctls sys, double now, out double timeout)
    {
        timeout = 0;
        ref TcpConnState st = ref ct.Tcp;
        TcpCtState oldState = st.State;
        byte index = Index(p.TcpFlags);
        TcpCtState newState = NextState(dir, index, oldState);
        bool liberal = sys.TcpLiberal;
        bool skipWindow = false;

        switch (newState)
        {
            case TcpCtState.SynSent:
                if (oldState < TcpCtState.TimeWait) break;
                if (((st.Seen[dir].Flags | st.Seen[1 - dir].Flags) & TcpSide.FlagCloseInit) != 0
                    || (st.LastDir == dir && st.LastIndex == RstSet))
                {
                    return Outcome.Repeat;
                }
                goto case TcpCtState.Ignore;
            case TcpCtState.Ignore:
                if (index == SynAckSet && st.LastIndex == SynSet && st.LastDir != dir && p.AcknowledgmentNumber == st.LastEnd)
                {
                    // The SYN/ACK answers a SYN we ignored: client and server are in sync, we catch up.
                    oldState = TcpCtState.SynSent;
                    newState = TcpCtState.SynRecv;
                    ref TcpSide s = ref st.Seen[st.LastDir];
                    s.End = st.LastEnd;
                    s.MaxEnd = st.LastEnd;
                    s.MaxWin = st.LastWin == 0 ? 1u : st.LastWin;
                    s.Scale = st.LastWscale;
                    st.LastFlags &= unchecked((byte)~TcpConnState.LastFlagExpChallengeAck);
                    s.Flags = st.LastFlags;
                    st.Seen[dir].Reset();
                    break;
                }
                st.LastIndex = index;
                st.LastDir = (byte)dir;
                st.LastSeq = p.SequenceNumber;
                st.LastEnd = SeqPlusLen(p);
                st.LastWin = p.Window;
                if (index == SynSet && dir == 0)
                {
                    var seen = new TcpSide();
                    st.LastFlags = st.LastWscale = 0;
                    Options(p, ref seen);
                    if ((seen.Flags & TcpSide.FlagWindowScale) != 0)
                    {
                        st.LastFlags |= TcpSide.FlagWindowScale;
                        st.LastWscale = seen.Scale;
                    }
                    if ((seen.Flags & TcpSide.FlagSackPerm) != 0) st.LastFlags |= TcpSide.FlagSackPerm;
                    if (oldState == TcpCtState.LastAck) st.LastFlags |= TcpConnState.LastFlagExpChallengeAck;
                }
                if (oldState == TcpCtState.SynSent && index == AckSet && dir == 1) st.LastAck = p.AcknowledgmentNumber;
                return Outcome.AcceptQuiet;
            case TcpCtState.Invalid:
                return Outcome.Invalid;
            case TcpCtState.TimeWait:
                if (oldState == TcpCtState.LastAck && index == AckSet && st.LastDir != dir && st.LastIndex == SynSet
                    && (st.LastFlags & TcpConnState.LastFlagExpChallengeAck) != 0)
                {
                    st.LastFlags &= unchecked((byte)~TcpConnState.LastFlagExpChallengeAck);
                    return Outcome.AcceptQuiet;
                }
                break;
            case TcpCtState.SynSent2:
                st.LastFlags |= TcpConnState.LastFlagSimultaneousOpen;
                break;
            case TcpCtState.SynRecv:
                if (dir == 1 && index == AckSet && (st.LastFlags & TcpConnState.LastFlagSimultaneousOpen) != 0)
                    newState = TcpCtState.Established;
                break;
            case TcpCtState.Close:
                if (index != RstSet) break;
                if (oldState is TcpCtState.FinWait or TcpCtState.LastAck or TcpCtState.TimeWait or TcpCtState.Close or TcpCtState.CloseWait)
                {
                    skipWindow = true;
                    break;
                }
                if ((st.Seen[1 - dir].Flags & TcpSide.FlagMaxAckSet) != 0 && st.LastIndex != SynSet)
                {
                    uint seq = p.SequenceNumber;
                    bool established = oldState == TcpCtState.Established;
                    if (seq == 0 && !established) goto rstChecks;
                    if (Before(seq, st.Seen[1 - dir].MaxAck) && Sysctls.Int(host, "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst", 0) == 0)
                        return Outcome.Invalid;
                    if (!established || seq == st.Seen[1 - dir].MaxAck) goto rstChecks;
                    if (st.LastIndex == AckSet && st.LastDir == dir && seq == st.LastEnd) goto rstChecks;
                    newState = oldState;
                }
            rstChecks:
                if ((((ct.Status & ConnStatus.SeenReply) != 0 && st.LastIndex == SynSet)
                     || ((ct.Status & ConnStatus.Assured) == 0 && st.LastIndex == AckSet))
                    && p.AcknowledgmentNumber == st.LastEnd)
                {
                    skipWindow = true;
                    break;
                }
                if (oldState == TcpCtState.SynSent && st.LastIndex == AckSet && st.LastDir == 1 && p.SequenceNumber == st.LastAck)
                {
                    skipWindow = true;
                }
                break;
        }

        if (!skipWindow)
        {
            WindowResult res = InWindow(ref st, dir, index, p, liberal);
            if (res == WindowResult.Ignore) return Outcome.AcceptQuiet;
            if (res == WindowResult.Invalid)
            {
                HandleInvalid(ct, dir, index, host, now);
                return Outcome.Invalid;
            }
        }

        st.LastIndex = index;
        st.LastDir = (byte)dir;
        st.State = newState;
        if (oldState != newState && newState == TcpCtState.FinWait) st.Seen[dir].Flags |= TcpSide.FlagCloseInit;

        int stateTimeout = sys.TcpTimeouts[(int)newState];
        int t;
        if (st.Retrans >= sys.TcpMaxRetrans && stateTimeout > sys.TcpRetransTimeout)
            t = sys.TcpRetransTimeout;
        else if (index == RstSet)
            t = sys.TcpTimeouts[(int)TcpCtState.Close];
        else if (((st.Seen[0].Flags | st.Seen[1].Flags) & TcpSide.FlagDataUnacknowledged) != 0 && stateTimeout > sys.TcpUnackTimeout)
            t = sys.TcpUnackTimeout;
        else if (st.LastWin == 0 && stateTimeout > sys.TcpRetransTimeout)
            t = sys.TcpRetransTimeout;
        else
            t = stateTimeout;

        if ((ct.Status & ConnStatus.SeenReply) == 0)
        {
            if ((p.TcpFlags & TcpFlags.Rst) != 0) return Outcome.Kill;
            if (index == SynSet && oldState == TcpCtState.SynSent) return Outcome.AcceptQuiet;
            if (newState == TcpCtState.Established && t > sys.TcpUnackTimeout) t = sys.TcpUnackTimeout;
        }
        else if ((ct.Status & ConnStatus.Assured) == 0 && oldState is TcpCtState.SynRecv or TcpCtState.Established
                 && newState == TcpCtState.Established)
        {
            ct.Status |= ConnStatus.Assured;
        }
        timeout = t;
        return Outcome.Accept;
    }

    /// <summary>nf_tcp_handle_invalid: an out-of-window FIN/RST answering one from the other side shortens an assured entry's life.</summary>
    private static void HandleInvalid(ConnEntry ct, int dir, byte index, VirtualHost host, double now)
    {
        if ((ct.Status & ConnStatus.Assured) == 0 || (ct.Status & ConnStatus.FixedTimeout) != 0) return;
        if (index is not (RstSet or FinSet)) return;
        ref TcpConnState st = ref ct.Tcp;
        if (st.LastDir != dir && st.LastIndex is FinSet or RstSet)
        {
            double left = ct.Timeout - now;
            if (left < 120) return;
            int unack = UnackTimeout(host);
            if (left > unack) ct.Timeout = now + unack;
        }
        else
        {
            st.LastIndex = index;
            st.LastDir = (byte)dir;
        }
    }

    /// <summary>tcp_can_early_drop: closing connections may be evicted even when assured.</summary>
    public static bool CanEarlyDrop(ConnEntry ct) =>
        ct.TcpState is TcpCtState.FinWait or TcpCtState.LastAck or TcpCtState.TimeWait or TcpCtState.Close or TcpCtState.CloseWait;
}

/// <summary>Reads the integer sysctls conntrack uses (a missing or unreadable value is the kernel's default).</summary>
internal static class Sysctls
{
    /// <summary>The value parsed once per host generation (Routing.Fib), not per packet.</summary>
    public static int Int(VirtualHost host, string key, int fallback) => Routing.Fib.Of(host).Int(key, fallback);
}
