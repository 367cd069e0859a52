using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Conntrack;

/// <summary>
/// The connection table of one network namespace (the conntrack hash): confirmed entries found by either
/// tuple and zone. Expired entries are removed when met (lookup, listing) as the kernel's lookup and gc do.
/// Entries are kept in insertion order (the kernel lists them in hash order).
/// </summary>
/// <remarks>
/// The hash is open addressing over an array of 4-byte slots: each names its entry by number (the table's entries by
/// number, <see cref="_byNumber"/>, numbers reused through a free list) beside the direction and the top bits of the
/// tuple's hash (a tag that skips most other keys without reading their entry). A lookup reads the entry's own tuple to
/// confirm a hit, so no tuple is stored twice; the slots hold no references (no write barrier per store, nothing for
/// the collector to scan). The insertion order is a list threaded through the entries.
/// <para>
/// Size: the kernel allocates its bucket array once, nf_conntrack_buckets long (nf_ct_alloc_hashtable in
/// nf_conntrack_core.c), and entries chain in it; a write to the sysctl rehashes everything into a new array of that
/// size (nf_conntrack_hash_resize). Here the slot array has one slot per kernel bucket (the next power of two), taken
/// at once when the table outgrows a small start (<see cref="SmallSlots"/>, so that a CLI command on a host with a
/// few connections does not pay megabytes), and it is not given back by a flush. An open-addressed array cannot chain
/// past it: at two thirds full (the kernel's chains would average 4/3) it doubles, as before. NAT's by-source index
/// likewise takes nf_nat_htable_size = the bucket count once (nf_nat_init, nf_nat_core.c; not resized with the
/// sysctl). Nothing of this is visible: listings use the insertion order, not the hash's.
/// </para>
/// </remarks>
public sealed class ConntrackTable
{
    /// <summary>A removed by-source slot (probing goes on past it; the hash's slots have <see cref="TombstoneSlot"/>).</summary>
    private static readonly ConnEntry Tombstone = new(default, default);

    // A hash slot (uint): 0 empty, TombstoneSlot removed (probing goes on past it), else
    //   bit 0: the direction; bits 1..NumberBits: the entry's number + 1 (never 0); the bits above: the tag, the key's
    //   31-bit hash (Mix) in those same bits. The number field is as wide as the entries by number need (_numberBits: the
    //   array holds 2^(NumberBits-1) entries); when that array grows, every slot's tag loses its lowest bit in place
    //   (GrowNumbers). The home slot comes from the hash's low bits, the tag from its high ones.
    // 262,144 slots (the default bucket count) are 1 MiB: session 11 (ctslot) measured an established packet at 20k flows
    // 1.2-1.4x faster with 1 MiB of 16-byte slots than with 4 MiB; the kernel's bucket array of that count is 2 MiB.

    /// <summary>A removed key's slot: no number (a number field of 0), the direction's bit set.</summary>
    private const uint TombstoneSlot = 1;

    /// <summary>The entries by number (the slots name them); a removed entry's number goes to <see cref="_freeNumbers"/>.</summary>
    private ConnEntry?[] _byNumber = new ConnEntry?[16];

    /// <summary>Numbers given back (a stack), and the next number never given.</summary>
    private int[] _freeNumbers = new int[16];
    private int _freeCount;
    private int _nextNumber;

    /// <summary>The slot's number field's width: log2(_byNumber.Length) + 1.</summary>
    private int _numberBits = 5;

    /// <summary>The slot bits above the number field (the tag's).</summary>
    private uint _tagMask = ~((1u << 6) - 1);

    /// <summary>The slot bits of the number field.</summary>
    private uint _fieldMask = ((1u << 5) - 1) << 1;

    /// <summary>A key's tag for hash <paramref name="h"/> (31 bits, the lowest clear), in its place in a slot.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private uint TagOf(int h) => (uint)h & _tagMask;

    /// <summary>The slot value for the key of hash <paramref name="h"/> held by entry number <paramref name="number"/> in direction <paramref name="dir"/>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private uint SlotValue(int h, int number, ConnDirection dir) => TagOf(h) | ((uint)(number + 1) << 1) | (uint)dir;

    /// <summary>The entry a live slot names.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private ConnEntry EntryOf(uint slot) => _byNumber[(int)((slot & _fieldMask) >> 1) - 1]!;

    /// <summary>
    /// The largest slot array (conntrack hash and by-source index alike) grown step by step from the start (16 KiB of
    /// hash slots, 64 KiB of by-source ones: below the large object heap); past it the array takes the bucket count's
    /// size at once.
    /// </summary>
    internal const int SmallSlots = 4096;

    /// <summary>The default nf_conntrack_buckets (Host/Sysctl.cs), until the hooks tell the table the host's.</summary>
    private const int DefaultBuckets = 262144;

    private uint[] _slots = new uint[64];
    private int _used;
    private int _live;

    /// <summary>Keys stored into the hash so far (every <see cref="PutAbsent"/> and overwriting <see cref="Put(in ConnTuple, ushort, int, ConnEntry, ConnDirection, bool)"/>).</summary>
    private long _puts;

    /// <summary>
    /// An IPv4 tuple in zone 0 that <see cref="TryFindV4"/> found no live holder of, with its hash and <see cref="_puts"/> at
    /// that time. While nothing has been stored since, the tuple is still free: a removal cannot make a key present, and
    /// expiry only turns a holder into a dead one. Confirmation (<see cref="TryInsert"/>) then skips the probe a new
    /// connection's lookup (nf_conntrack_in's miss) or its NAT binding (nf_nat_used_tuple of the chosen reply) has just made.
    /// </summary>
    private struct AbsentV4
    {
        public ulong Addresses;
        public uint Ports;
        public byte Protocol;
        public int Hash;
        public long Puts;
    }

    /// <summary>The last two <see cref="AbsentV4"/> misses (a new connection's original, then its reply).</summary>
    private AbsentV4 _absent0 = new() { Puts = -1 }, _absent1 = new() { Puts = -1 };

    /// <summary>The slot count nf_conntrack_buckets asks for (<see cref="SlotsFor"/>).</summary>
    private int _bucketSlots = SlotsFor(DefaultBuckets);

    /// <summary>NAT's by-source index (nf_nat_bysource): chain heads by source key, chains threaded through the entries, oldest first.</summary>
    private SourceSlotData[] _sourceSlots = new SourceSlotData[16];

    /// <summary>A by-source slot: the chain's head and its source key's hash, side by side (one cache line).</summary>
    private struct SourceSlotData
    {
        public ConnEntry? Head;
        public int Hash;
    }
    private int _sourceUsed;

    /// <summary>Moves on every change of the by-source slots (an add, a removal, a rehash, a flush): names a state of them.</summary>
    private long _sourceChanges;

    /// <summary>
    /// <see cref="HasBySourceV4"/>'s last miss: the key, its hash, the slot an add of the key takes (the first empty or
    /// tombstone slot of its probe), and <see cref="_sourceChanges"/> then. A MASQUERADE or SNAT binding asks it at
    /// POSTROUTING and confirmation adds the same key right after (<see cref="SourceAdd"/>): while nothing changed the
    /// slots in between, the add's hash and probe would find what the miss found.
    /// </summary>
    private struct SourceMissV4
    {
        public uint Source;
        public ushort Port;
        public byte Protocol;
        public int Hash;
        public int Free;
        public long Changes;
    }
    private SourceMissV4 _sourceMiss = new() { Changes = -1 };

    private ConnEntry? _oldest;
    private ConnEntry? _newest;
    private int _count;

    public int Count => _count;

    /// <summary>The confirmed entries, oldest first.</summary>
    public IReadOnlyCollection<ConnEntry> Entries => new EntryList(this);

    private sealed class EntryList(ConntrackTable table) : IReadOnlyCollection<ConnEntry>
    {
        public int Count => table._count;

        public IEnumerator<ConnEntry> GetEnumerator()
        {
            // The next entry is read before yielding, so the caller may remove the one it got.
            ConnEntry? e = table._oldest;
            while (e is not null)
            {
                ConnEntry? next = e.Newer;
                yield return e;
                e = next;
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>The newest entry (for listings, newest first).</summary>
    internal ConnEntry? Newest => _newest;

    // ------------------------------------------------------------------ the hash

    private static int Hash(in ConnTuple t, ushort zone)
    {
        ulong a = (ulong)t.Source ^ (ulong)(t.Source >> 64);
        ulong b = (ulong)t.Destination ^ (ulong)(t.Destination >> 64);
        ulong c = ((ulong)t.SourcePort << 48) | ((ulong)t.DestinationPort << 32) | ((ulong)t.Protocol << 24) | ((ulong)(byte)t.Family << 16) | zone;
        return Mix(a, b, c);
    }

    /// <summary>
    /// <see cref="Hash(in ConnTuple, ushort)"/> of an IPv4 tuple in zone 0, from its fields (no tuple built): an IPv4
    /// address's upper 64 bits are zero, so the folded halves are the address itself.
    /// </summary>
    private static int HashV4(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort) =>
        Mix(source, destination, ((ulong)sourcePort << 48) | ((ulong)destinationPort << 32) | ((ulong)protocol << 24) | ((ulong)(byte)IpFamily.V4 << 16));

    private static int Mix(ulong a, ulong b, ulong c)
    {
        ulong h = (a * 0x9E3779B97F4A7C15UL) ^ (b * 0xC2B2AE3D27D4EB4FUL) ^ (c * 0x165667B19E3779F9UL);
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9UL;
        h ^= h >> 32;
        // The low bit is the direction's in the stored key; probing starts from the hash without it. The sign bit is
        // cleared too: a prefetch token is (hash << 32 | slot) and every reader takes a negative token or hash for "none"
        // (PrefetchEntry, TryFindV4, the tracker's hint, the burst's hand-over): with it set, half of all tuples were
        // neither fetched ahead nor handed over.
        return (int)h & 0x7FFF_FFFE;
    }

    /// <summary>The slot holding (<paramref name="tuple"/>, <paramref name="zone"/>), or -1.</summary>
    private int FindSlot(in ConnTuple tuple, ushort zone, int h)
    {
        uint[] slots = _slots;
        int mask = slots.Length - 1;
        uint tag = TagOf(h), tagMask = _tagMask, fieldMask = _fieldMask;
        for (int i = h & mask; ; i = (i + 1) & mask)
        {
            uint slot = slots[i];
            if (slot == 0) return -1;
            if (((slot ^ tag) & tagMask) != 0 || (slot & fieldMask) == 0) continue;
            ConnEntry e = EntryOf(slot);
            var dir = (ConnDirection)(slot & 1);
            if (e.ZoneFor(dir) == zone && e.TupleIs(dir, tuple)) return i;
        }
    }

    /// <summary>
    /// Asks the CPU to fetch the hash slot where (<paramref name="tuple"/>, <paramref name="zone"/>) is looked for, so that the
    /// lookup a little later (conntrack at PREROUTING) finds it in the cache: the miss overlaps the input's parse and the
    /// receive checks. Returns a token for <see cref="PrefetchEntry"/> (the slot and the key), or -1. Changes nothing (a
    /// hint; a wrong guess costs one fetch).
    /// </summary>
    internal unsafe long Prefetch(in ConnTuple tuple, ushort zone)
    {
        if (_live == 0 || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return -1;
        uint[] slots = _slots;
        int h = Hash(tuple, zone);
        int i = h & (slots.Length - 1);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref slots[i]));
        return ((long)(uint)h << 32) | (uint)i;
    }

    /// <summary><see cref="Prefetch"/> for an IPv4 tuple in zone 0 given by its fields (the same hash, no tuple built).</summary>
    internal unsafe long PrefetchV4(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort)
    {
        if (_live == 0 || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return -1;
        uint[] slots = _slots;
        int h = HashV4(protocol, source, destination, sourcePort, destinationPort);
        int i = h & (slots.Length - 1);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref slots[i]));
        return ((long)(uint)h << 32) | (uint)i;
    }

    /// <summary>
    /// The address of an entry's first field (past the object header), for a prefetch hint. Read from the reference itself:
    /// nothing of the object is loaded. (Taking it as <c>ref Unsafe.As&lt;T&gt;(e).Field</c> made the JIT emit a null check
    /// that reads the object's first byte: a demand miss on the cold entry the prefetch was meant to hide, 1 % of a SYN.)
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static unsafe byte* FieldsOf(ConnEntry e) => (byte*)System.Runtime.CompilerServices.Unsafe.As<ConnEntry, nint>(ref e) + sizeof(nint);

    /// <summary>
    /// The second step of <see cref="Prefetch"/>, some time later (<paramref name="token"/> is what it returned): the slot
    /// fetched then is read now, and when its stored key is the packet's, the entry it holds is fetched in turn: its
    /// first four cache lines, which hold the entry's tuples, status and timeout and, allocated right after it when the
    /// connection began, its TCP state. A hint as well: nothing is changed and nothing is decided from it (a slot index of
    /// a table since grown is only range-checked).
    /// </summary>
    internal unsafe void PrefetchEntry(long token)
    {
        // A connection's opening packet (SynToken): its slot almost never holds its entry, and reading the slot here would
        // wait for the line the prefetch has only just asked for; the lookup reads it later, after the receive checks.
        if (token < 0 || (token & SynToken) != 0 || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        uint[] slots = _slots;
        int i = (int)(uint)token;
        if ((uint)i >= (uint)slots.Length) return;
        uint slot = slots[i];
        if (((slot ^ TagOf((int)(token >> 32))) & _tagMask) != 0) return;
        int number = (int)((slot & _fieldMask) >> 1) - 1;
        ConnEntry?[] byNumber = _byNumber;
        if ((uint)number >= (uint)byNumber.Length || byNumber[number] is not { } e) return;
        byte* at = FieldsOf(e);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 64);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 128);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 192);
    }

    /// <summary>
    /// A prefetch token's mark for a TCP SYN without ACK (<see cref="ConntrackHooks.Prefetch"/>): the hash's lowest bit, which
    /// a hash never has (<see cref="Mix"/>: the direction's bit of a stored key); readers of the token's hash clear it.
    /// </summary>
    internal const long SynToken = 1L << 32;

    /// <summary>Sets (tuple, zone) → (entry, dir): the slot of the same key is overwritten, as a dictionary would.</summary>
    private void Put(in ConnTuple tuple, ushort zone, ConnEntry ct, ConnDirection dir) => Put(tuple, zone, Hash(tuple, zone), ct, dir, absent: false);

    /// <summary><see cref="Put(in ConnTuple, ushort, ConnEntry, ConnDirection)"/> with the hash known; <paramref name="absent"/>: the key is known not to be in the table.</summary>
    private void Put(in ConnTuple tuple, ushort zone, int h, ConnEntry ct, ConnDirection dir, bool absent)
    {
        int at = absent ? -1 : FindSlot(tuple, zone, h);
        if (at < 0)
        {
            PutAbsent(h, ct, dir);
            return;
        }
        _puts++;
        _slots[at] = SlotValue(h, ct.TableNumber, dir);
    }

    /// <summary>Stores (entry, dir) under hash <paramref name="h"/> for a key known not to be in the table.</summary>
    private void PutAbsent(int h, ConnEntry ct, ConnDirection dir)
    {
        // At most two thirds full (tombstones included): a miss, the common case for a new connection, ends after a few
        // probes (about four at that load), each reading only the slot's stored key.
        if ((_used + 1) * 3 > _slots.Length * 2) Rehash();
        uint[] slots = _slots;
        int mask = slots.Length - 1;
        int at = h & mask;
        while (slots[at] is not (0 or TombstoneSlot)) at = (at + 1) & mask;
        if (slots[at] == 0) _used++;
        _live++;
        _puts++;
        slots[at] = SlotValue(h, ct.TableNumber, dir);
    }

    private void Unput(in ConnTuple tuple, ushort zone, ConnEntry ct)
    {
        int at = FindSlot(tuple, zone, Hash(tuple, zone));
        if (at < 0 || !ReferenceEquals(EntryOf(_slots[at]), ct)) return;
        _slots[at] = TombstoneSlot;
        _live--;
    }

    /// <summary>
    /// A table twice as large when the live entries fill a third of it, else the same size without the tombstones; past
    /// <see cref="SmallSlots"/> at least the bucket count's size (taken once). The live load stays below two thirds.
    /// </summary>
    private void Rehash()
    {
        int size = _live * 3 >= _slots.Length ? _slots.Length * 2 : _slots.Length;
        if (size > SmallSlots && size < _bucketSlots) size = _bucketSlots;
        Resize(size);
    }

    /// <summary>The slot count for <paramref name="buckets"/> kernel buckets: the next power of two (64 to 2^28).</summary>
    internal static int SlotsFor(int buckets) =>
        (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(buckets, 64, 1 << 28));

    /// <summary>The slot array's length (tests, bench).</summary>
    internal int Capacity => _slots.Length;

    /// <summary>Numbers given since the table's start or last flush (tests: with numbers reused, never more than the most entries held at once).</summary>
    internal int NumbersGiven => _nextNumber;

    /// <summary>The entry numbered <paramref name="number"/>, or null (tests).</summary>
    internal ConnEntry? ByNumber(int number) => (uint)number < (uint)_byNumber.Length ? _byNumber[number] : null;

    /// <summary>The by-source index's slot count (tests, bench).</summary>
    internal int SourceCapacity => _sourceSlots.Length;

    /// <summary>By-source slots used since the last rehash or flush (chain heads and tombstones; tests: two tables laid out alike).</summary>
    internal int SourceSlotsUsed => _sourceUsed;

    /// <summary>
    /// The host's nf_conntrack_buckets (the hooks pass it before a new connection is made). A changed count rehashes a
    /// table past its small start into the new size at once, as a write to the sysctl does in the kernel
    /// (nf_conntrack_hash_resize: every entry moves to the new array); never below what the live entries need.
    /// </summary>
    internal void UseBuckets(int buckets)
    {
        int slots = SlotsFor(buckets);
        if (slots == _bucketSlots) return;
        _bucketSlots = slots;
        if (_slots.Length <= SmallSlots) return;
        int size = slots;
        while (size * 2 < (_live + 1) * 3) size *= 2;
        if (size != _slots.Length) Resize(size);
    }

    /// <summary>
    /// Every live slot moved into a new array of <paramref name="size"/> slots (a power of two); tombstones dropped. A slot
    /// keeps only its hash's high bits: the home slot is found again from its entry's tuple (the hash it was stored under).
    /// </summary>
    private void Resize(int size)
    {
        uint[] oldSlots = _slots;
        uint[] slots = new uint[size];
        int mask = size - 1;
        uint fieldMask = _fieldMask;
        for (int j = 0; j < oldSlots.Length; j++)
        {
            uint slot = oldSlots[j];
            if ((slot & fieldMask) == 0) continue;
            int i = KeyHash(EntryOf(slot), (ConnDirection)(slot & 1)) & mask;
            while (slots[i] != 0) i = (i + 1) & mask;
            slots[i] = slot;
        }
        _slots = slots;
        _used = _live;
    }

    /// <summary>The hash an entry's key of <paramref name="dir"/> was stored under (as <see cref="Insert"/> and <see cref="TryInsert"/> hash it).</summary>
    private static int KeyHash(ConnEntry e, ConnDirection dir) =>
        Hash(dir == ConnDirection.Original ? e.Original : e.Reply, e.ZoneFor(dir));

    /// <summary>
    /// A number for an entry about to be put in the hash (<see cref="ConnEntry.TableNumber"/>): a given-back one, else the
    /// next; the entries by number grow (doubling) when every number is taken, the slots' number field one bit wider.
    /// </summary>
    private void TakeNumber(ConnEntry ct)
    {
        int n;
        if (_freeCount > 0)
        {
            n = _freeNumbers[--_freeCount];
        }
        else
        {
            if (_nextNumber == _byNumber.Length) GrowNumbers();
            n = _nextNumber++;
        }
        _byNumber[n] = ct;
        ct.TableNumber = n;
    }

    /// <summary>An entry's number given back (it left the hash).</summary>
    private void GiveNumber(ConnEntry ct)
    {
        int n = ct.TableNumber;
        if ((uint)n >= (uint)_nextNumber || !ReferenceEquals(_byNumber[n], ct)) return;
        _byNumber[n] = null;
        if (_freeCount == _freeNumbers.Length) Array.Resize(ref _freeNumbers, _freeNumbers.Length * 2);
        _freeNumbers[_freeCount++] = n;
    }

    /// <summary>
    /// The entries by number twice as long; every slot's number field one bit wider, taken from its tag's lowest bit (the
    /// tag is the hash in the bits above the field: the same bits less one).
    /// </summary>
    private void GrowNumbers()
    {
        if (_byNumber.Length >= 1 << 29) throw new InvalidOperationException("conntrack: more than 2^29 entries in one table");
        Array.Resize(ref _byNumber, _byNumber.Length * 2);
        uint oldField = _fieldMask;
        _numberBits++;
        _fieldMask = ((1u << _numberBits) - 1) << 1;
        _tagMask = ~((1u << (_numberBits + 1)) - 1);
        uint[] slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            uint slot = slots[i];
            if ((slot & oldField) == 0) continue;
            slots[i] = (slot & _tagMask) | (slot & oldField) | (slot & 1);
        }
    }

    // ------------------------------------------------------------------ NAT's by-source chains

    private static int SourceHash(in ConnTuple t) => SourceHash(t.Family, t.Protocol, t.Source, t.SourcePort);

    private static int SourceHash(IpFamily family, byte protocol, UInt128 source, ushort sourcePort)
    {
        ulong a = (ulong)source ^ (ulong)(source >> 64);
        ulong c = ((ulong)sourcePort << 16) | ((ulong)protocol << 8) | (byte)family;
        ulong h = (a * 0x9E3779B97F4A7C15UL) ^ (c * 0xC2B2AE3D27D4EB4FUL);
        h ^= h >> 31;
        return (int)h;
    }

    private static bool SameSource(ConnEntry e, IpFamily family, byte protocol, UInt128 source, ushort sourcePort) =>
        e.Family == family && e.Protocol == protocol && e.OriginalSourceIs(source, sourcePort);

    /// <summary>The slot of the chain whose head has <paramref name="t"/>'s source key (hash <paramref name="h"/>), or -1.</summary>
    private int SourceSlot(in ConnTuple t, int h) => SourceSlot(t.Family, t.Protocol, t.Source, t.SourcePort, h);

    /// <summary><see cref="SourceSlot(in ConnTuple, int)"/> for a source key given by its fields.</summary>
    private int SourceSlot(IpFamily family, byte protocol, UInt128 source, ushort sourcePort, int h)
    {
        int mask = _sourceSlots.Length - 1;
        for (int i = h & mask; ; i = (i + 1) & mask)
        {
            ref SourceSlotData slot = ref _sourceSlots[i];
            ConnEntry? head = slot.Head;
            if (head is null) return -1;
            // The stored hash first: a probe past other chains reads no entry.
            if (slot.Hash == h && !ReferenceEquals(head, Tombstone) && SameSource(head, family, protocol, source, sourcePort)) return i;
        }
    }

    /// <summary>Adds a source-bound entry at the head of its chain (nf_nat_bysource's hlist_add_head: newest first).</summary>
    private void SourceAdd(ConnEntry ct)
    {
        // The source key read from the entry's fields (no original tuple built).
        IpFamily family = ct.Family;
        byte protocol = ct.Protocol;
        UInt128 source = ct.OriginalSource;
        ushort sourcePort = ct.OriginalSourcePort;
        ref SourceMissV4 miss = ref _sourceMiss;
        // The binding's miss for this key, the slots unchanged since: no chain of the key, and the slot the probe
        // would take is the one the miss recorded.
        bool missed = miss.Changes == _sourceChanges && family == IpFamily.V4 && source == miss.Source && sourcePort == miss.Port
            && protocol == miss.Protocol && (_sourceUsed + 1) * 2 <= _sourceSlots.Length;
        _sourceChanges++;
        int h, i;
        if (missed)
        {
            h = miss.Hash;
            i = miss.Free;
        }
        else
        {
            h = SourceHash(family, protocol, source, sourcePort);
            i = SourceSlot(family, protocol, source, sourcePort, h);
            if (i >= 0)
            {
                ConnEntry head = _sourceSlots[i].Head!;
                for (ConnEntry? e = head; e is not null; e = e.NextBySource)
                {
                    if (ReferenceEquals(e, ct)) return;
                }
                ct.NextBySource = head;
                _sourceSlots[i].Head = ct;
                return;
            }
            if ((_sourceUsed + 1) * 2 > _sourceSlots.Length) SourceRehash();
            int mask = _sourceSlots.Length - 1;
            i = h & mask;
            while (_sourceSlots[i].Head is { } e && !ReferenceEquals(e, Tombstone)) i = (i + 1) & mask;
        }
        if (_sourceSlots[i].Head is null) _sourceUsed++;
        ct.NextBySource = null;
        _sourceSlots[i] = new SourceSlotData { Head = ct, Hash = h };
    }

    private void SourceRemove(ConnEntry ct)
    {
        _sourceChanges++;
        ConnTuple o = ct.Original;
        int i = SourceSlot(o, SourceHash(o));
        if (i < 0) return;
        ConnEntry head = _sourceSlots[i].Head!;
        if (ReferenceEquals(head, ct))
        {
            _sourceSlots[i].Head = ct.NextBySource ?? Tombstone;
            ct.NextBySource = null;
            return;
        }
        for (ConnEntry e = head; e.NextBySource is { } next; e = next)
        {
            if (ReferenceEquals(next, ct))
            {
                e.NextBySource = ct.NextBySource;
                ct.NextBySource = null;
                return;
            }
        }
    }

    /// <summary>
    /// Twice as large when the chains fill a quarter of the slots, else the same size without the tombstones; past
    /// <see cref="SmallSlots"/> at least the bucket count's size (taken once, as nf_nat_init sizes nf_nat_bysource).
    /// </summary>
    private void SourceRehash()
    {
        _sourceChanges++;
        SourceSlotData[] old = _sourceSlots;
        int heads = 0;
        foreach (SourceSlotData o in old)
        {
            if (o.Head is not null && !ReferenceEquals(o.Head, Tombstone)) heads++;
        }
        int size = heads * 4 >= old.Length ? old.Length * 2 : old.Length;
        if (size > SmallSlots && size < _bucketSlots) size = _bucketSlots;
        _sourceSlots = new SourceSlotData[size];
        _sourceUsed = 0;
        int mask = size - 1;
        for (int j = 0; j < old.Length; j++)
        {
            ConnEntry? head = old[j].Head;
            if (head is null || ReferenceEquals(head, Tombstone)) continue;
            int i = old[j].Hash & mask;
            while (_sourceSlots[i].Head is not null) i = (i + 1) & mask;
            _sourceSlots[i] = old[j];
            _sourceUsed++;
        }
    }

    /// <summary>
    /// The confirmed entries with a source binding (IPS_SRC_NAT_DONE) whose original tuple has this protocol,
    /// source address and port, oldest first (NAT's nf_nat_bysource, searched newest first).
    /// </summary>
    public IReadOnlyList<ConnEntry> BySource(ConnTuple original)
    {
        var list = new List<ConnEntry>(2);
        for (ConnEntry? e = BySourceNewest(original); e is not null; e = e.NextBySource) list.Add(e);
        list.Reverse();
        return list;
    }

    /// <summary>
    /// Asks the CPU to fetch the by-source slot of <paramref name="original"/>'s source key, where NAT looks when it binds
    /// a new connection's source (find_appropriate_src) some time later in the same packet's walk: the cache miss then
    /// overlaps the work in between instead of stalling there. Changes nothing (a hint; a stale address is harmless).
    /// </summary>
    internal unsafe void PrefetchBySource(in ConnTuple original)
    {
        if (_sourceUsed == 0 || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        SourceSlotData[] slots = _sourceSlots;
        Engine.CacheHint.Whole(ref slots[SourceHash(original) & (slots.Length - 1)]);
    }

    /// <summary><see cref="PrefetchBySource"/> for an IPv4 original tuple given by its fields.</summary>
    internal unsafe void PrefetchBySourceV4(byte protocol, uint source, ushort sourcePort)
    {
        if (_sourceUsed == 0 || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        SourceSlotData[] slots = _sourceSlots;
        Engine.CacheHint.Whole(ref slots[SourceHash(IpFamily.V4, protocol, source, sourcePort) & (slots.Length - 1)]);
    }

    /// <summary>Whether an IPv4 source key (protocol, address, port) has a by-source chain (<see cref="BySourceNewest"/> not null), from its fields.</summary>
    /// <remarks>A miss is remembered (<see cref="SourceMissV4"/>) for the add at confirmation.</remarks>
    internal bool HasBySourceV4(byte protocol, uint source, ushort sourcePort)
    {
        if (_sourceUsed == 0) return false;
        int h = SourceHash(IpFamily.V4, protocol, source, sourcePort);
        SourceSlotData[] slots = _sourceSlots;
        int mask = slots.Length - 1;
        int free = -1;
        // SourceSlot's probe, which also notes the first tombstone (where SourceAdd's insert would go).
        for (int i = h & mask; ; i = (i + 1) & mask)
        {
            ref SourceSlotData slot = ref slots[i];
            ConnEntry? head = slot.Head;
            if (head is null)
            {
                _sourceMiss = new SourceMissV4
                {
                    Source = source, Port = sourcePort, Protocol = protocol, Hash = h, Free = free < 0 ? i : free, Changes = _sourceChanges,
                };
                return false;
            }
            if (ReferenceEquals(head, Tombstone))
            {
                if (free < 0) free = i;
                continue;
            }
            if (slot.Hash == h && SameSource(head, IpFamily.V4, protocol, source, sourcePort)) return true;
        }
    }

    /// <summary>The newest entry of <paramref name="original"/>'s by-source chain (the others follow through NextBySource), or null.</summary>
    internal ConnEntry? BySourceNewest(in ConnTuple original)
    {
        if (_sourceUsed == 0) return null;
        int at = SourceSlot(original, SourceHash(original));
        return at < 0 ? null : _sourceSlots[at].Head;
    }

    // ------------------------------------------------------------------ the entries' pool

    /// <summary>A list of removed entries threaded through <see cref="ConnEntry.Older"/> (head and tail: lists are joined whole).</summary>
    private struct PoolList
    {
        public ConnEntry? Head, Tail;
        public int Count;

        public void Push(ConnEntry e)
        {
            e.Older = Head;
            Head = e;
            Tail ??= e;
            Count++;
        }

        /// <summary>Moves every entry of <paramref name="other"/> to this list's end.</summary>
        public void Join(ref PoolList other)
        {
            if (other.Head is null) return;
            if (Tail is null) Head = other.Head;
            else Tail.Older = other.Head;
            Tail = other.Tail;
            Count += other.Count;
            other = default;
        }
    }

    // Removed entries (expired, deleted, flushed, early-dropped, killed by TCP, evicted by NAT) become new connections
    // again instead of garbage: no allocation per new connection once a table has seen connections end, as the kernel
    // takes nf_conn from its slab cache (nf_conntrack_cachep in nf_conntrack_core.c, SLAB_TYPESAFE_BY_RCU: a freed
    // entry may be reused while a reader still holds it, so readers check the tuple again). Here an entry is reused only
    // after a grace of two packet boundaries (PacketBoundary, called when a top-level packet starts): the packet that
    // removed it, anything attached to it, its result and the observers that run after each packet (conntrack events,
    // PacketResult.Connection of a reused result) are done with it by then. Whoever keeps a ConnEntry longer (a
    // connlimit list, an API user) must compare its tuples again, as the kernel's readers do.
    private PoolList _retiredNow, _retiredBefore, _free;

    /// <summary>Entries removed from the table so far (conntrack events compare it to find destroyed connections).</summary>
    internal long Removals { get; private set; }

    /// <summary>Removed entries waiting for their grace to end, and free ones (tests).</summary>
    internal (int Waiting, int Free) PoolCounts => (_retiredNow.Count + _retiredBefore.Count, _free.Count);

    /// <summary>
    /// A top-level packet starts: entries removed before the previous boundary become free, those removed since wait one
    /// more (see the pool's comment).
    /// </summary>
    internal void PacketBoundary()
    {
        // Most packets remove nothing: no list to move (and no reference stored).
        if (_retiredBefore.Head is null && _retiredNow.Head is null) return;
        _free.Join(ref _retiredBefore);
        _retiredBefore = _retiredNow;
        _retiredNow = default;
    }

    /// <summary>
    /// A new, unconfirmed entry for these tuples (__nf_conntrack_alloc): a free pooled entry made new, else a new object.
    /// Either is what <c>new ConnEntry(original, reply)</c> gives.
    /// </summary>
    internal ConnEntry NewEntry(in ConnTuple original, in ConnTuple reply)
    {
        ConnEntry? e = _free.Head;
        if (e is null) return new ConnEntry(original, reply);
        _free.Head = e.Older;
        if (_free.Head is null) _free.Tail = null;
        else PrefetchLines(_free.Head);
        _free.Count--;
        e.Reuse(original, reply);
        return e;
    }

    /// <summary>
    /// <see cref="NewEntry"/> for an IPv4 connection of a protocol with ports, given by its original tuple's fields (the
    /// reply its inverse): the fields are written once (<see cref="ConnEntry.ReuseV4"/>), no tuple is built.
    /// </summary>
    internal ConnEntry NewEntryV4(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort)
    {
        ConnEntry? e = _free.Head;
        if (e is null) return new ConnEntry(protocol, source, destination, sourcePort, destinationPort);
        _free.Head = e.Older;
        if (_free.Head is null) _free.Tail = null;
        else PrefetchLines(_free.Head);
        _free.Count--;
        e.ReuseV4(protocol, source, destination, sourcePort, destinationPort);
        return e;
    }

    /// <summary>
    /// Asks the CPU to fetch the entry's first four cache lines (a hint: the next free entry, whose fields the next new
    /// connection writes; a pooled entry has long left the cache, a new object's memory had not).
    /// </summary>
    private static unsafe void PrefetchLines(ConnEntry e)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        byte* at = FieldsOf(e);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 64);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 128);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 192);
    }

    // ------------------------------------------------------------------ the table

    /// <summary>nf_conntrack_find_get: the live entry holding <paramref name="tuple"/> and the direction it was found in.</summary>
    public bool TryFind(ConnTuple tuple, ushort zone, double now, out ConnEntry entry, out ConnDirection dir)
    {
        int at = FindSlot(tuple, zone, Hash(tuple, zone));
        if (at >= 0)
        {
            uint slot = _slots[at];
            ConnEntry hit = EntryOf(slot);
            if (hit.Timeout > now)
            {
                entry = hit;
                dir = (ConnDirection)(slot & 1);
                return true;
            }
            Remove(hit);
        }
        entry = null!;
        dir = ConnDirection.Original;
        return false;
    }

    /// <summary>
    /// <see cref="TryFind"/> for an IPv4 tuple in zone 0 given by its fields: the slots' entries are compared field by
    /// field (<see cref="ConnEntry.TupleIsV4"/>), no 128-bit tuple is built. <paramref name="hash"/>: the prefetch's hash of
    /// the same tuple (<see cref="Prefetch"/>), or -1 to compute it here.
    /// </summary>
    internal bool TryFindV4(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort, int hash, double now, out ConnEntry entry, out ConnDirection dir)
    {
        // A prefetch token's hash may carry SynToken's bit (the hash's lowest): cleared.
        int h = hash >= 0 ? hash & ~1 : HashV4(protocol, source, destination, sourcePort, destinationPort);
        uint[] slots = _slots;
        int mask = slots.Length - 1;
        uint tag = TagOf(h), tagMask = _tagMask, fieldMask = _fieldMask;
        for (int i = h & mask; ; i = (i + 1) & mask)
        {
            uint slot = slots[i];
            if (slot == 0) break;
            if (((slot ^ tag) & tagMask) != 0 || (slot & fieldMask) == 0) continue;
            ConnEntry e = EntryOf(slot);
            var d = (ConnDirection)(slot & 1);
            if (e.ZoneFor(d) != 0 || !e.TupleIsV4(d, protocol, source, destination, sourcePort, destinationPort)) continue;
            if (e.Timeout > now)
            {
                entry = e;
                dir = d;
                return true;
            }
            Remove(e);
            break;
        }
        // The newest miss replaces the older of the two remembered.
        _absent0 = _absent1;
        _absent1.Addresses = ((ulong)source << 32) | destination;
        _absent1.Ports = ((uint)sourcePort << 16) | destinationPort;
        _absent1.Protocol = protocol;
        _absent1.Hash = h;
        _absent1.Puts = _puts;
        entry = null!;
        dir = ConnDirection.Original;
        return false;
    }

    /// <summary>
    /// Whether the IPv4 tuple (zone 0) is known free without a probe (<see cref="AbsentV4"/>: a miss of it with nothing
    /// stored since), and its hash then.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool KnownAbsentV4(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort, out int hash)
    {
        ulong addresses = ((ulong)source << 32) | destination;
        uint ports = ((uint)sourcePort << 16) | destinationPort;
        if (_absent1.Puts == _puts && _absent1.Addresses == addresses && _absent1.Ports == ports && _absent1.Protocol == protocol)
        {
            hash = _absent1.Hash;
            return true;
        }
        if (_absent0.Puts == _puts && _absent0.Addresses == addresses && _absent0.Ports == ports && _absent0.Protocol == protocol)
        {
            hash = _absent0.Hash;
            return true;
        }
        hash = 0;
        return false;
    }

    /// <summary>Whether either tuple is taken (the clash test of __nf_conntrack_confirm).</summary>
    public bool Clashes(ConnEntry ct, double now) =>
        TryFind(ct.Original, ct.ZoneFor(ConnDirection.Original), now, out _, out _)
        || TryFind(ct.Reply, ct.ZoneFor(ConnDirection.Reply), now, out _, out _);

    /// <summary>
    /// __nf_conntrack_confirm's clash test and insertion in one: false (nothing inserted) when a live entry holds either
    /// tuple; an expired one is removed on the way. Each tuple is hashed and probed once (as <see cref="Clashes"/> then
    /// <see cref="Insert"/> would do twice).
    /// </summary>
    public bool TryInsert(ConnEntry ct, double now)
    {
        // A new IPv4 connection in the default zone (the common case): the same probes and stores from the entry's fields,
        // no tuple built (HashV4 is Hash of such a tuple; TryFindV4's probe is FindSlot's, an expired holder removed alike).
        if (ct.Owner is null && ct.ZoneFor(ConnDirection.Original) == 0 && ct.ZoneFor(ConnDirection.Reply) == 0
            && ct.TryTupleV4(ConnDirection.Original, out byte op, out uint os, out uint od, out ushort osp, out ushort odp)
            && ct.TryTupleV4(ConnDirection.Reply, out byte rp, out uint rs, out uint rd, out ushort rsp, out ushort rdp)
            && !(op == rp && os == rs && od == rd && osp == rsp && odp == rdp))
        {
            // A tuple this table just found free (the connection's own lookup, NAT's probe of the reply it chose) with nothing
            // stored since is free still: not probed again (KnownAbsentV4); the others as __nf_conntrack_confirm does.
            if (!KnownAbsentV4(op, os, od, osp, odp, out int h1)
                && TryFindV4(op, os, od, osp, odp, h1 = HashV4(op, os, od, osp, odp), now, out _, out _)) return false;
            if (!KnownAbsentV4(rp, rs, rd, rsp, rdp, out int h2)
                && TryFindV4(rp, rs, rd, rsp, rdp, h2 = HashV4(rp, rs, rd, rsp, rdp), now, out _, out _)) return false;
            ct.Status |= ConnStatus.Confirmed;
            TakeNumber(ct);
            PutAbsent(h1, ct, ConnDirection.Original);
            PutAbsent(h2, ct, ConnDirection.Reply);
            Link(ct);
            return true;
        }
        ConnTuple o = ct.Original, r = ct.Reply;
        ushort zo = ct.ZoneFor(ConnDirection.Original), zr = ct.ZoneFor(ConnDirection.Reply);
        if (zo == zr && o == r)
        {
            // A tuple that is its own reply: both keys are one, the general path keeps it once.
            if (Clashes(ct, now)) return false;
            Insert(ct);
            return true;
        }
        int ho = Hash(o, zo), hr = Hash(r, zr);
        if (!Free(o, zo, ho, now) || !Free(r, zr, hr, now)) return false;
        if (ct.Owner is not null)
        {
            // Moving from another table (or re-inserting): the general path unlinks it first.
            Insert(ct);
            return true;
        }
        ct.Status |= ConnStatus.Confirmed;
        TakeNumber(ct);
        Put(o, zo, ho, ct, ConnDirection.Original, absent: true);
        Put(r, zr, hr, ct, ConnDirection.Reply, absent: true);
        Link(ct);
        return true;
    }

    /// <summary>No live entry holds (tuple, zone); an expired holder is removed (as <see cref="TryFind"/> does).</summary>
    private bool Free(in ConnTuple tuple, ushort zone, int h, double now)
    {
        int at = FindSlot(tuple, zone, h);
        if (at < 0) return true;
        ConnEntry hit = EntryOf(_slots[at]);
        if (hit.Timeout > now) return false;
        Remove(hit);
        return true;
    }

    /// <summary>Inserts a confirmed entry under both tuples.</summary>
    public void Insert(ConnEntry ct)
    {
        // An entry of another table leaves it first (its number there is given back); one of this table keeps its number.
        if (ct.Owner is { } other && other != this) other.Unlink(ct, retire: false);
        if (ct.Owner != this) TakeNumber(ct);
        ct.Status |= ConnStatus.Confirmed;
        Put(ct.Original, ct.ZoneFor(ConnDirection.Original), ct, ConnDirection.Original);
        Put(ct.Reply, ct.ZoneFor(ConnDirection.Reply), ct, ConnDirection.Reply);
        Link(ct);
    }

    /// <summary>The insertion-order list and the by-source index, for an entry just put in the hash.</summary>
    private void Link(ConnEntry ct)
    {
        if (ct.Owner is { } other && other != this) other.Unlink(ct, retire: false);
        if (ct.Owner != this)
        {
            ct.Owner = this;
            ct.Older = _newest;
            ct.Newer = null;
            if (_newest is null) _oldest = ct;
            else _newest.Newer = ct;
            _newest = ct;
            _count++;
        }
        if (ct.Has(ConnStatus.SrcNatDone)) SourceAdd(ct);
    }

    public void Remove(ConnEntry ct) => Unlink(ct, retire: true);

    /// <summary>Takes the entry out of the table; <paramref name="retire"/>: into the pool (not when it moves to another table).</summary>
    private void Unlink(ConnEntry ct, bool retire)
    {
        if (ct.Owner != this) return;
        ct.Owner = null;
        if (ct.Older is null) _oldest = ct.Newer;
        else ct.Older.Newer = ct.Newer;
        if (ct.Newer is null) _newest = ct.Older;
        else ct.Newer.Older = ct.Older;
        ct.Older = ct.Newer = null;
        _count--;
        Unput(ct.Original, ct.ZoneFor(ConnDirection.Original), ct);
        Unput(ct.Reply, ct.ZoneFor(ConnDirection.Reply), ct);
        GiveNumber(ct);
        SourceRemove(ct);
        ct.Status |= ConnStatus.Dying;
        Removals++;
        if (retire) _retiredNow.Push(ct);
    }

    /// <summary>Removes the entries whose timeout has passed (the gc worker).</summary>
    public void Expire(double now)
    {
        ConnEntry? e = _oldest;
        while (e is not null)
        {
            ConnEntry? next = e.Newer;
            if (e.Timeout <= now) Remove(e);
            e = next;
        }
    }

    /// <summary>Removes every entry (conntrack -F); the hash keeps its size.</summary>
    public void Clear()
    {
        for (ConnEntry? e = _oldest; e is not null;)
        {
            ConnEntry? next = e.Newer;
            e.Owner = null;
            e.Older = e.Newer = null;
            e.NextBySource = null;
            _retiredNow.Push(e);
            Removals++;
            e = next;
        }
        // The arrays are kept (a flush leaves the kernel's hash as it is), emptied; numbers are given from 0 again.
        Array.Clear(_slots);
        Array.Clear(_byNumber);
        _freeCount = _nextNumber = 0;
        _used = _live = 0;
        Array.Clear(_sourceSlots);
        _sourceUsed = 0;
        _sourceChanges++;
        _oldest = _newest = null;
        _count = 0;
    }

    /// <summary>
    /// early_drop: makes room by evicting one entry that is not assured (the kernel looks in the new tuple's
    /// hash buckets; Chainwalk takes the oldest). With <paramref name="gcEarlyDrop"/> (the gc worker's early
    /// drop after a "table full") an assured TCP connection that is closing may go too (tcp_can_early_drop).
    /// False when nothing could be evicted.
    /// </summary>
    public bool EarlyDrop(bool gcEarlyDrop = false)
    {
        for (ConnEntry? ct = _oldest; ct is not null; ct = ct.Newer)
        {
            if (!ct.Has(ConnStatus.Assured))
            {
                Remove(ct);
                return true;
            }
        }
        if (!gcEarlyDrop) return false;
        for (ConnEntry? ct = _oldest; ct is not null; ct = ct.Newer)
        {
            if (TcpTracker.CanEarlyDrop(ct))
            {
                Remove(ct);
                return true;
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ conntrack -L

    /// <summary>
    /// The entry's line as <c>conntrack -L</c> (conntrack-tools 1.4.7, libnetfilter_conntrack's default
    /// format) prints it: protocol name and number, seconds left, TCP state, the original tuple (with
    /// counters when accounting is on), [UNREPLIED], the reply tuple, [ASSURED], mark, zone, use.
    /// </summary>
    public static string Format(ConnEntry ct, double now)
    {
        var sb = new StringBuilder(160);
        string name = ProtocolName(ct.Protocol);
        sb.Append(name.PadRight(8)).Append(' ').Append(ct.Protocol.ToString(CultureInfo.InvariantCulture)).Append(' ');
        sb.Append(ct.SecondsLeft(now).ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (ct.TcpState is { } tcp) sb.Append(TcpTracker.Name(tcp)).Append(' ');
        AppendTuple(sb, ct.Original);
        AppendCounter(sb, ct, ConnDirection.Original);
        if (!ct.Has(ConnStatus.SeenReply)) sb.Append("[UNREPLIED] ");
        AppendTuple(sb, ct.Reply);
        AppendCounter(sb, ct, ConnDirection.Reply);
        if (ct.Has(ConnStatus.Assured)) sb.Append("[ASSURED] ");
        sb.Append("mark=").Append(ct.Mark.ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (ct.Secmark != 0) sb.Append("secmark=").Append(ct.Secmark.ToString(CultureInfo.InvariantCulture)).Append(' ');
        // Only a zone of both directions is dumped as CTA_ZONE; directional zones go inside the tuples
        // (CTA_TUPLE_ZONE), which this line does not show.
        if (ct.Zone != 0 && ct.ZoneDirections == 0) sb.Append("zone=").Append(ct.Zone.ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (ct.Helper is { Length: > 0 } h) sb.Append("helper=").Append(h).Append(' ');
        sb.Append("use=1");
        return sb.ToString();
    }

    /// <summary>libnetfilter_conntrack's protocol names (others print as "unknown").</summary>
    public static string ProtocolName(byte proto) => proto switch
    {
        IpProtocol.Tcp => "tcp",
        IpProtocol.Udp => "udp",
        IpProtocol.UdpLite => "udplite",
        IpProtocol.Icmp => "icmp",
        IpProtocol.Icmpv6 => "icmpv6",
        IpProtocol.Sctp => "sctp",
        IpProtocol.Gre => "gre",
        33 => "dccp",
        _ => "unknown",
    };

    private static void AppendTuple(StringBuilder sb, ConnTuple t)
    {
        sb.Append("src=").Append(IpNet.FormatAddress(t.Source, t.Family)).Append(" dst=").Append(IpNet.FormatAddress(t.Destination, t.Family)).Append(' ');
        if (t.IsIcmp)
        {
            sb.Append("type=").Append(t.IcmpType.ToString(CultureInfo.InvariantCulture))
              .Append(" code=").Append(t.IcmpCode.ToString(CultureInfo.InvariantCulture))
              .Append(" id=").Append(t.SourcePort.ToString(CultureInfo.InvariantCulture)).Append(' ');
        }
        else if (t.Protocol == IpProtocol.Gre)
        {
            sb.Append("srckey=0x").Append(t.SourcePort.ToString("x", CultureInfo.InvariantCulture))
              .Append(" dstkey=0x").Append(t.DestinationPort.ToString("x", CultureInfo.InvariantCulture)).Append(' ');
        }
        else if (ConnTuple.HasPortTuple(t.Protocol))
        {
            sb.Append("sport=").Append(t.SourcePort.ToString(CultureInfo.InvariantCulture))
              .Append(" dport=").Append(t.DestinationPort.ToString(CultureInfo.InvariantCulture)).Append(' ');
        }
    }

    private static void AppendCounter(StringBuilder sb, ConnEntry ct, ConnDirection dir)
    {
        if (ct.Counters is null) return;
        ConnCounter c = ct.Counters[(int)dir];
        sb.Append("packets=").Append(c.Packets.ToString(CultureInfo.InvariantCulture))
          .Append(" bytes=").Append(c.Bytes.ToString(CultureInfo.InvariantCulture)).Append(' ');
    }

    /// <summary>Every live entry as <c>conntrack -L</c> lines, newest first (as a fresh hash often lists them).</summary>
    public IEnumerable<string> List(double now)
    {
        Expire(now);
        for (ConnEntry? e = _newest; e is not null; e = e.Older) yield return Format(e, now);
    }
}
