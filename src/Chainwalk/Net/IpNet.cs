using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Numerics;

namespace Chainwalk.Net;

/// <summary>
/// An address with a mask, as iptables stores <c>-s</c>/<c>-d</c> and many extension options:
/// the mask may be non-contiguous (<c>1.2.3.4/255.0.255.0</c>). IPv4 lives in the low 32 bits.
/// </summary>
/// <remarks>
/// The address and mask are kept as 64-bit halves, not as <see cref="UInt128"/> fields: ReadyToRun (crossgen2) does not
/// precompile code that depends on the layout of a type holding an Int128/UInt128 (its alignment is ABI-specific), so
/// a UInt128 field here left every method touching a rule (which holds two IpNets) to the JIT at start-up. The halves
/// also make the struct 40 bytes instead of 48 (no 16-byte alignment).
/// </remarks>
public readonly record struct IpNet
{
    private readonly ulong _addressLow, _addressHigh, _maskLow, _maskHigh;

    public IpNet(UInt128 Address, UInt128 Mask, IpFamily Family)
    {
        _addressLow = (ulong)Address;
        _addressHigh = (ulong)(Address >> 64);
        _maskLow = (ulong)Mask;
        _maskHigh = (ulong)(Mask >> 64);
        this.Family = Family;
    }

    private IpNet(ulong addressLow, ulong maskLow, IpFamily family)
    {
        _addressLow = addressLow;
        _maskLow = maskLow;
        Family = family;
    }

    /// <summary>An IPv4 address and mask (no <see cref="UInt128"/> arithmetic: the restore path's form).</summary>
    public static IpNet V4(uint address, uint mask) => new(address, mask, IpFamily.V4);

    public UInt128 Address
    {
        get => new(_addressHigh, _addressLow);
        init
        {
            _addressLow = (ulong)value;
            _addressHigh = (ulong)(value >> 64);
        }
    }

    public UInt128 Mask
    {
        get => new(_maskHigh, _maskLow);
        init
        {
            _maskLow = (ulong)value;
            _maskHigh = (ulong)(value >> 64);
        }
    }

    public IpFamily Family { get; init; }

    /// <summary>The low 32 bits of the address (an IPv4 address).</summary>
    public uint AddressV4 => (uint)_addressLow;

    /// <summary>The low 32 bits of the mask (an IPv4 mask).</summary>
    public uint MaskV4 => (uint)_maskLow;

    /// <summary>An IPv4 net whose address and mask fit in 32 bits (as every IPv4 -s/-d does): <see cref="AddressV4"/> and <see cref="MaskV4"/> are all of it.</summary>
    public bool IsV4In32Bits => Family == IpFamily.V4 && ((_addressLow | _maskLow) >> 32) == 0 && (_addressHigh | _maskHigh) == 0;

    /// <summary>True when address and mask are both zero (no -s/-d given).</summary>
    public bool IsZero => (_addressLow | _addressHigh | _maskLow | _maskHigh) == 0;

    /// <summary>True when the mask is zero.</summary>
    public bool MaskIsZero => (_maskLow | _maskHigh) == 0;

    public void Deconstruct(out UInt128 Address, out UInt128 Mask, out IpFamily Family)
    {
        Address = this.Address;
        Mask = this.Mask;
        Family = this.Family;
    }

    public static IpNet Any(IpFamily family) => new(UInt128.Zero, UInt128.Zero, family);

    public static UInt128 FullMask(IpFamily family) => family == IpFamily.V4 ? uint.MaxValue : UInt128.MaxValue;

    public static UInt128 PrefixMask(IpFamily family, int bits)
    {
        int width = family.AddressBits();
        if (bits <= 0) return UInt128.Zero;
        UInt128 full = FullMask(family);
        return (full << (width - bits)) & full;
    }

    /// <summary>The prefix length when the mask is contiguous, else -1 (xtables_ipmask_to_cidr).</summary>
    public int PrefixLength => Family == IpFamily.V4 ? MaskToCidrV4((uint)_maskLow) : PrefixLengthWide();

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private int PrefixLengthWide() => MaskToCidr(Mask, Family);

    public bool IsAny => IsZero;

    /// <summary><see cref="MaskToCidr"/> of an IPv4 mask.</summary>
    public static int MaskToCidrV4(uint mask)
    {
        int ones = BitOperations.PopCount(mask);
        return ones == 0 ? 0 : mask == uint.MaxValue << (32 - ones) ? ones : -1;
    }

    public bool Contains(UInt128 addr) => (addr & Mask) == Address;

    public static int MaskToCidr(UInt128 mask, IpFamily family)
    {
        int width = family.AddressBits();
        UInt128 full = FullMask(family);
        int ones = (int)UInt128.PopCount(mask);
        return PrefixMask(family, ones) == (mask & full) ? ones : -1;
    }

    public string AddressText => FormatAddress(Address, Family);

    public string MaskText => FormatAddress(Mask, Family);

    /// <summary>The save form: <c>addr/len</c>, or <c>addr/mask</c> when the mask is not contiguous.</summary>
    public string SaveText
    {
        get
        {
            int cidr = PrefixLength;
            return cidr >= 0 ? $"{AddressText}/{cidr.ToString(CultureInfo.InvariantCulture)}" : $"{AddressText}/{MaskText}";
        }
    }

    /// <summary>Appends <see cref="SaveText"/> (IPv4 without building the string).</summary>
    public void AppendSaveText(System.Text.StringBuilder sb)
    {
        int cidr = PrefixLength;
        if (Family != IpFamily.V4 || cidr < 0)
        {
            sb.Append(SaveText);
            return;
        }
        uint v = AddressV4;
        sb.Append(v >> 24).Append('.').Append((v >> 16) & 0xff).Append('.').Append((v >> 8) & 0xff).Append('.').Append(v & 0xff)
          .Append('/').Append(cidr);
    }

    /// <summary>The numeric -L form: like save, but a full-length mask is not shown (xtables_ipmask_to_numeric).</summary>
    public string ListNumericText => AddressText + MaskSuffixForList(Mask, Family);

    public static string MaskSuffixForList(UInt128 mask, IpFamily family)
    {
        int cidr = MaskToCidr(mask, family);
        if (cidr < 0) return "/" + FormatAddress(mask, family);
        if (cidr == family.AddressBits()) return string.Empty;
        return "/" + cidr.ToString(CultureInfo.InvariantCulture);
    }

    public override string ToString() => SaveText;

    public static string FormatAddress(UInt128 value, IpFamily family)
    {
        if (family == IpFamily.V4)
        {
            uint v = (uint)value;
            return string.Create(CultureInfo.InvariantCulture, $"{v >> 24}.{(v >> 16) & 0xff}.{(v >> 8) & 0xff}.{v & 0xff}");
        }
        return FormatV6(value);
    }

    /// <summary>
    /// IPv6 text as glibc's inet_ntop writes it (what iptables prints): the longest run of two or more zero
    /// groups becomes "::" (the first one on a tie), and ::a.b.c.d / ::ffff:a.b.c.d keep the dotted quad.
    /// </summary>
    public static string FormatV6(UInt128 value)
    {
        Span<ushort> w = stackalloc ushort[8];
        for (int i = 0; i < 8; i++) w[i] = (ushort)(value >> (112 - (16 * i)));
        int bestBase = -1, bestLen = 0, curBase = -1, curLen = 0;
        for (int i = 0; i < 8; i++)
        {
            if (w[i] == 0)
            {
                if (curBase < 0) { curBase = i; curLen = 1; }
                else curLen++;
            }
            else if (curBase >= 0)
            {
                if (bestBase < 0 || curLen > bestLen) { bestBase = curBase; bestLen = curLen; }
                curBase = -1;
            }
        }
        if (curBase >= 0 && (bestBase < 0 || curLen > bestLen)) { bestBase = curBase; bestLen = curLen; }
        if (bestBase >= 0 && bestLen < 2) bestBase = -1;

        var sb = new System.Text.StringBuilder(40);
        for (int i = 0; i < 8; i++)
        {
            if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen)
            {
                if (i == bestBase) sb.Append(':');
                continue;
            }
            if (i != 0) sb.Append(':');
            if (i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && w[5] == 0xffff)))
            {
                uint v4 = (uint)value;
                sb.Append(CultureInfo.InvariantCulture, $"{v4 >> 24}.{(v4 >> 16) & 0xff}.{(v4 >> 8) & 0xff}.{v4 & 0xff}");
                return sb.ToString();
            }
            sb.Append(w[i].ToString("x", CultureInfo.InvariantCulture));
        }
        if (bestBase >= 0 && bestBase + bestLen == 8) sb.Append(':');
        return sb.ToString();
    }

    public static UInt128 FromIPAddress(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int written);
        if (written == 4) return BinaryPrimitives.ReadUInt32BigEndian(bytes);
        return BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }

    public static IPAddress ToIPAddress(UInt128 value, IpFamily family)
    {
        if (family == IpFamily.V4)
        {
            Span<byte> b4 = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(b4, (uint)value);
            return new IPAddress(b4);
        }
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, value);
        return new IPAddress(b);
    }

    /// <summary>
    /// Parses a numeric IPv4 address the way libxtables does: up to four dot-separated parts, each
    /// 0-255 in C notation (decimal, 0x hex, 0 octal); missing trailing parts are zero ("10" = 10.0.0.0).
    /// </summary>
    public static bool TryParseV4Numeric(string text, bool isMask, out uint value)
    {
        value = 0;
        if (text.Length == 0 || text.Length > 19) return false;
        string[] parts = text.Split('.');
        if (parts.Length > 4) return false;
        if (isMask && parts.Length != 4) return false;
        for (int i = 0; i < 4; i++)
        {
            uint b = 0;
            if (i < parts.Length)
            {
                if (!NumberParsing.TryParseCUnsigned(parts[i], 255, out ulong v)) return false;
                b = (uint)v;
            }
            value = (value << 8) | b;
        }
        return true;
    }

    public static bool TryParseV6Numeric(string text, out UInt128 value)
    {
        value = UInt128.Zero;
        if (text.Length == 0 || !text.Contains(':', StringComparison.Ordinal)) return false;
        if (!IPAddress.TryParse(text, out IPAddress? ip) || ip.AddressFamily != AddressFamily.InterNetworkV6) return false;
        if (ip.ScopeId != 0) return false;
        value = FromIPAddress(ip);
        return true;
    }

    public static bool TryParseNumeric(string text, IpFamily family, out UInt128 value)
    {
        if (family == IpFamily.V4)
        {
            bool ok = TryParseV4Numeric(text, false, out uint v);
            value = v;
            return ok;
        }
        return TryParseV6Numeric(text, out value);
    }

    /// <summary>Strict dotted-quad or IPv6 text (inet_pton), used by extensions that call inet_pton.</summary>
    public static bool TryParseStrict(string text, IpFamily family, out UInt128 value)
    {
        value = UInt128.Zero;
        if (family == IpFamily.V4)
        {
            string[] parts = text.Split('.');
            if (parts.Length != 4) return false;
            uint v = 0;
            foreach (string p in parts)
            {
                if (p.Length == 0 || p.Length > 3 || !p.All(char.IsAsciiDigit)) return false;
                uint b = uint.Parse(p, CultureInfo.InvariantCulture);
                if (b > 255) return false;
                v = (v << 8) | b;
            }
            value = v;
            return true;
        }
        return TryParseV6Numeric(text, out value);
    }

    public static int PopCount(UInt128 v) => (int)UInt128.PopCount(v);

    internal static int LeadingOnes(uint v) => BitOperations.LeadingZeroCount(~v);
}
